"""Latent-space Frechet distance and polynomial MMD against direct computations."""
import numpy as np
import pytest

from smdiff.evaluation import latent_metrics


def test_frechet_distance_of_gaussians_matches_closed_form():
    # Two Gaussians with diagonal covariances: FD = |dmu|^2 + sum (s1 - s2)^2 with s the std devs.
    rng = np.random.default_rng(0)
    n, d = 200_000, 3
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    mu1, mu2 = np.zeros(d), np.array([1.0, -1.0, 0.0])
    a = mu1 + s1 * rng.standard_normal((n, d))
    b = mu2 + s2 * rng.standard_normal((n, d))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    assert latent_metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_is_zero_for_identical_sets_and_flattens_sequences():
    x = np.random.default_rng(1).standard_normal((50, 4, 6))
    assert latent_metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert latent_metrics.frechet_distance(x, x.reshape(-1, 6)) == pytest.approx(0.0, abs=1e-6)


def test_mmd_polynomial_equals_kernel_matrix_estimator():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((40, 5)), 0.5 + rng.standard_normal((30, 5))
    kernel = lambda x, y: (x @ y.T) ** 2
    direct = kernel(a, a).mean() + kernel(b, b).mean() - 2 * kernel(a, b).mean()
    assert latent_metrics.mmd_polynomial(a, b) == pytest.approx(direct, rel=1e-10)
    cubic = lambda x, y: (x @ y.T) ** 3
    direct_cubic = cubic(a, a).mean() + cubic(b, b).mean() - 2 * cubic(a, b).mean()
    assert latent_metrics.mmd_polynomial(a, b, degree=3) == pytest.approx(direct_cubic)
    assert latent_metrics.mmd_polynomial(a, a) == pytest.approx(0.0, abs=1e-10)


def test_mismatched_widths_raise():
    with pytest.raises(ValueError, match="widths"):
        latent_metrics.frechet_distance(np.zeros((4, 2)), np.zeros((4, 3)))
