"""The two non-learned baselines of Mittal et al. 2021, Table 1, behind the generator interface of `base.py`.

- `InterpolationGenerator`: spherical interpolation (slerp, Shoemake 1985, as MusicVAE interpolates).
  Unconditional: from the first to the last latent of a real window drawn from a held set (the paper: "at
  the start and end of an example from the test set"), k evenly spaced points, both ends included.
  Infilling: across each gap, from the last known latent before it to the first known latent after it
  (the paper's task: latent 7 to latent 24, 16 points strictly between them).
- `PriorGenerator`: every latent an independent draw from the VAE prior N(0, I) over all z_size dims,
  mapped into the priors' space by `LatentScaling.to_model` (values may leave [-1, 1]: the prior is
  wider than the data on some active dims, and that is what this baseline shows).

Slerp runs in the VAE's own coordinates (origin = the VAE prior's mean), not in the min/max-scaled space
whose origin is arbitrary; the result is scaled back by `to_model`. Two spaces are offered:
- 'full' (default): the whole z_size-dim latent with the unused dims refilled with N(0, 1) draws, one draw
  per end point, as the released code slerps full 512-d vectors. The paper interpolates "between two
  MusicVAE embeddings", and a MusicVAE embedding is the whole z. With many unused dims the refill noise
  makes the two ends nearly orthogonal, so the active components follow the slerp weights of a ~90 degree
  arc whatever the angle between the real latents (mid-path they are longer than on the great circle
  through two latents less than 90 degrees apart, shorter for latents further apart).
- 'active': the active dims only, the unused ones at zero: a great circle through the real latents.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from smdiff.codec.latent_codec import LatentScaling
from smdiff.generators.base import UnsupportedTaskError, check_infill_inputs, keep_known

# Below this angle (radians) slerp is numerically a straight line; interpolate linearly there.
_MIN_ANGLE = 1e-4
SPACES = ("full", "active")


def slerp(p0: jax.Array, p1: jax.Array, t: jax.Array) -> jax.Array:
    """Spherical interpolation between p0 and p1 [..., D] at fractions t [...] (0 -> p0, 1 -> p1).

    sin((1 - t) W) / sin W * p0 + sin(t W) / sin W * p1, W the angle between p0 and p1; unit vectors stay
    on the unit sphere. Nearly parallel vectors are interpolated linearly.
    """
    t = jnp.asarray(t)[..., None]
    norms = jnp.linalg.norm(p0, axis=-1, keepdims=True) * jnp.linalg.norm(p1, axis=-1, keepdims=True)
    cosine = jnp.sum(p0 * p1, axis=-1, keepdims=True) / jnp.maximum(norms, 1e-12)
    angle = jnp.arccos(jnp.clip(cosine, -1.0, 1.0))
    straight = angle < _MIN_ANGLE
    safe_angle = jnp.where(straight, 1.0, angle)  # keeps the unused branch's gradient and value finite
    spherical = (jnp.sin((1.0 - t) * safe_angle) * p0 + jnp.sin(t * safe_angle) * p1) / jnp.sin(safe_angle)
    return jnp.where(straight, (1.0 - t) * p0 + t * p1, spherical)


def gap_endpoints(known_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each position of known_mask [k]: the last known position at or before it, the first at or after
    it, and its fraction of the way between them (0 at known positions). Each [k].

    Raises UnsupportedTaskError when a gap has no known latent on one side (interpolation needs both ends).
    """
    known_mask = np.asarray(known_mask, bool)
    positions = np.arange(len(known_mask))
    if not known_mask.any() or not known_mask[0] or not known_mask[-1]:
        raise UnsupportedTaskError(
            "interpolation infills between known latents; every gap needs a known latent on both sides, "
            f"got known_mask {known_mask.astype(int).tolist()} (for continuation use the diffusion, MDN or prior generator)")
    known_positions = positions[known_mask]
    before = known_positions[np.searchsorted(known_positions, positions, side="right") - 1]
    after = known_positions[np.searchsorted(known_positions, positions, side="left")]
    fraction = np.where(after > before, (positions - before) / np.maximum(after - before, 1), 0.0)
    return before, after, fraction


@dataclasses.dataclass
class InterpolationGenerator:
    """Slerp between real latents.

    Attributes:
      scaling: the latent dataset's `LatentScaling`.
      held_latents: [m, k, d] real windows in the scaled space (e.g. the test split) whose first and last
        latents are the ends of the unconditional samples.
      space: 'full' (the whole z, unused dims refilled with noise; the released code's) or 'active'.
    """

    scaling: LatentScaling
    held_latents: np.ndarray
    space: str = "full"

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        self.held_latents = np.asarray(self.held_latents, np.float32)
        if self.held_latents.ndim != 3 or self.held_latents.shape[-1] != self.scaling.dim or not len(self.held_latents):
            raise ValueError(f"held_latents must be a non-empty [m, k, {self.scaling.dim}] array, "
                             f"got {self.held_latents.shape}")
        self.window_chunks = self.held_latents.shape[1]
        self.latent_dim = self.scaling.dim
        self._active = np.zeros(self.scaling.z_size, np.float32)
        self._active[list(self.scaling.active_dims)] = 1.0

    def _vae_coordinates(self, rng: jax.Array, x: jax.Array) -> jax.Array:
        """Scaled latents x [n, k, d] -> [n, k, z_size] in the interpolation space: the unused dims hold
        one N(0, 1) draw per latent ('full') or zeros ('active')."""
        z = self.scaling.to_vae(x, rng)
        return z if self.space == "full" else z * self._active

    def sample(self, rng: jax.Array, num_samples: int) -> jax.Array:
        """x [num_samples, k, d]: each from the first to the last latent of a random held window."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        choice_rng, refill_rng = jax.random.split(rng)
        windows = self.held_latents[np.asarray(jax.random.randint(choice_rng, (num_samples,), 0,
                                                                  len(self.held_latents)))]
        ends = self._vae_coordinates(refill_rng, jnp.asarray(windows[:, [0, -1]]))  # [n, 2, z_size]
        t = jnp.linspace(0.0, 1.0, self.window_chunks)  # [k]
        return self.scaling.to_model(slerp(ends[:, :1], ends[:, 1:], t[None, :]))

    def infill(self, rng: jax.Array, known: jax.Array, known_mask: jax.Array) -> jax.Array:
        """Slerp across every gap of known_mask [k] between its known neighbours (rng: the refill noise of
        the 'full' space; 'active' is deterministic)."""
        mask = check_infill_inputs(known, known_mask, self.window_chunks, self.latent_dim)
        before, after, fraction = gap_endpoints(mask)
        known = jnp.asarray(known, jnp.float32)
        z = self._vae_coordinates(rng, known)  # [n, k, z_size], each known latent's refill drawn once
        path = slerp(z[:, before], z[:, after], jnp.asarray(fraction, jnp.float32)[None, :])
        return keep_known(self.scaling.to_model(path), known, mask)


@dataclasses.dataclass
class PriorGenerator:
    """Independent N(0, I) draws from the VAE prior, one per latent, in the scaled space.

    Attributes:
      scaling: the latent dataset's `LatentScaling` (its z_size is the VAE's).
      window_chunks: k, latents per sequence.
    """

    scaling: LatentScaling
    window_chunks: int

    def __post_init__(self):
        if self.window_chunks < 1:
            raise ValueError(f"window_chunks must be positive, got {self.window_chunks}")
        self.latent_dim = self.scaling.dim

    def sample(self, rng: jax.Array, num_samples: int) -> jax.Array:
        """x [num_samples, k, d] = to_model(z), z ~ N(0, I) [num_samples, k, z_size]."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        z = jax.random.normal(rng, (num_samples, self.window_chunks, self.scaling.z_size))
        return self.scaling.to_model(z)

    def infill(self, rng: jax.Array, known: jax.Array, known_mask: jax.Array) -> jax.Array:
        """Fresh prior draws at the unknown positions of known_mask [k]; the known ones returned exactly."""
        mask = check_infill_inputs(known, known_mask, self.window_chunks, self.latent_dim)
        return keep_known(self.sample(rng, known.shape[0]), jnp.asarray(known, jnp.float32), mask)
