"""Distances between sets of latents: Frechet distance and polynomial-kernel MMD (paper Fig. 3).

Both compare the distribution of individual latent vectors: a set of sequences [n, k, d] is flattened
to [n * k, d] rows, as the released code did with its 2-bar latents.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg


def _rows(latents: np.ndarray) -> np.ndarray:
    """[..., d] -> [rows, d] float64."""
    latents = np.asarray(latents, dtype=np.float64)
    return latents.reshape(-1, latents.shape[-1])


def frechet_distance(real: np.ndarray, generated: np.ndarray, eps: float = 1e-6) -> float:
    """||mu_r - mu_g||^2 + Tr(C_r + C_g - 2 (C_r C_g)^(1/2)) between Gaussian fits of two latent sets.

    Args:
      real, generated: latents [..., d]; leading axes are flattened into samples.
      eps: added to both covariance diagonals when their product is singular.
    """
    real, generated = _rows(real), _rows(generated)
    if real.shape[1] != generated.shape[1]:
        raise ValueError(f"latent widths differ: {real.shape[1]} vs {generated.shape[1]}")
    mu_r, mu_g = real.mean(0), generated.mean(0)
    cov_r, cov_g = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_r @ cov_g)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov_r.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((cov_r + offset) @ (cov_g + offset))
    # sqrtm of a product of PSD matrices is real up to round-off.
    covmean = np.real(covmean)
    diff = mu_r - mu_g
    return float(diff @ diff + np.trace(cov_r) + np.trace(cov_g) - 2.0 * np.trace(covmean))


def mmd_polynomial(real: np.ndarray, generated: np.ndarray, degree: int = 2) -> float:
    """Biased MMD^2 with the kernel k(x, y) = (x . y)^degree (the released code's choice, degree 2).

    Computed from feature-space moments rather than n x n kernel matrices: for degree 2,
    mean_ij (x_i . y_j)^2 = <E[x x^T], E[y y^T]>_F, so memory is O(d^2) whatever the number of samples.
    """
    real, generated = _rows(real), _rows(generated)
    if degree != 2:
        return _mmd_polynomial_direct(real, generated, degree)
    second_r = real.T @ real / len(real)  # [d, d]
    second_g = generated.T @ generated / len(generated)
    return float(np.sum(second_r * second_r) + np.sum(second_g * second_g) - 2.0 * np.sum(second_r * second_g))


def _mmd_polynomial_direct(real: np.ndarray, generated: np.ndarray, degree: int) -> float:
    def kernel_mean(a, b):
        return float(np.mean((a @ b.T) ** degree))

    return kernel_mean(real, real) + kernel_mean(generated, generated) - 2.0 * kernel_mean(real, generated)
