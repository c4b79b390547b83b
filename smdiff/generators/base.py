"""The interface every latent-sequence generator offers, so the sampling job treats them all alike.

A generator (diffusion prior, TransformerMDN, slerp interpolation, N(0, I) prior) works in the *scaled*
latent space of `smdiff.codec.latent_codec.LatentScaling`: a sample is an array x [n, k, d] with k latents
(2 bars each) of d active dims scaled to [-1, 1]. It holds whatever it needs (params, scaling, a held set
of real latents) and offers two tasks:

- `sample(rng, num_samples) -> x [n, k, d]`: unconditional generation;
- `infill(rng, known [n, k, d], known_mask [k] bool) -> x [n, k, d]`: generate the positions where
  `known_mask` is False given those where it is True; the given positions come back exactly.
  Continuation is the special case of a prefix mask (`prefix_mask`).

A generator that cannot do a task raises `UnsupportedTaskError` naming the generator and the task.
"""
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np


class UnsupportedTaskError(ValueError):
    """Raised when a generator is asked for a task it cannot do (e.g. infilling with an autoregressive model)."""


@runtime_checkable
class Generator(Protocol):
    """What the sampling job needs of a generator; all arrays live in the scaled latent space."""

    def sample(self, rng: jax.Array, num_samples: int) -> jax.Array:
        """Draws `num_samples` sequences, x [num_samples, k, d]."""
        ...

    def infill(self, rng: jax.Array, known: jax.Array, known_mask: jax.Array) -> jax.Array:
        """Fills the positions where `known_mask` [k] is False; returns x [n, k, d] with known positions exact."""
        ...


def prefix_mask(window_chunks: int, num_known: int) -> np.ndarray:
    """known_mask [window_chunks] for continuation: the first `num_known` latents are given."""
    if not 0 <= num_known <= window_chunks:
        raise ValueError(f"num_known must lie in [0, {window_chunks}], got {num_known}")
    return np.arange(window_chunks) < num_known


def paper_infill_mask(window_chunks: int = 32, num_missing: int = 16) -> np.ndarray:
    """known_mask [window_chunks] of the paper's infilling task: the middle `num_missing` latents are
    missing (k=32: keep 0-7 and 24-31, fill 8-23, i.e. the middle 32 of 64 bars)."""
    if not 0 < num_missing < window_chunks or (window_chunks - num_missing) % 2:
        raise ValueError(
            f"need an even number of known latents around the gap; got k={window_chunks}, missing={num_missing}"
        )
    start = (window_chunks - num_missing) // 2
    positions = np.arange(window_chunks)
    return (positions < start) | (positions >= start + num_missing)


def check_infill_inputs(known: jax.Array, known_mask: jax.Array, window_chunks: int, latent_dim: int) -> np.ndarray:
    """Validates an infilling request and returns the mask as a host bool array [k].

    known: [n, k, d]; known_mask: [k]. Raises ValueError with the offending shape otherwise.
    """
    mask = np.asarray(known_mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"known_mask must be bool (True = given), got dtype {mask.dtype}")
    if mask.shape != (window_chunks,):
        raise ValueError(f"known_mask must have shape ({window_chunks},), got {mask.shape}")
    if known.ndim != 3 or known.shape[1:] != (window_chunks, latent_dim):
        raise ValueError(f"known must have shape [n, {window_chunks}, {latent_dim}], got {tuple(known.shape)}")
    return mask


def keep_known(x: jax.Array, known: jax.Array, known_mask: jax.Array) -> jax.Array:
    """x [n, k, d] with the positions where known_mask [k] is True replaced by `known` [n, k, d], bit-exact."""
    return jnp.where(jnp.asarray(known_mask)[None, :, None], known, x)
