"""The diffusion prior as a Generator: sampling, infilling/continuation, variation and trajectories.

All in the scaled latent space (x [n, k, d], see `smdiff.codec.latent_codec`). Each request is one jitted
reverse process (`smdiff.diffusion.gaussian`) with the batch split over this process's devices, each
sequence with its own key (`smdiff.training.sharding.ShardedApply`'s per-row mode), so the samples do not
depend on the number of devices.
"""
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from smdiff.diffusion import gaussian
from smdiff.generators.base import check_infill_inputs
from smdiff.tasks.latent_diffusion import LatentDiffusionTask
from smdiff.training import sharding

SAMPLERS = ("ddpm", "ddim")


@dataclasses.dataclass
class DiffusionGenerator:
    """A trained LatentDiffusionTask's sampler.

    Attributes:
      task, params: the trained model (e.g. `smdiff.configurables.load_trained(workdir)`).
      window_chunks: k, latents per sequence (the training data's).
      sampler: 'ddpm' (ancestral over all N diffusion steps, the paper's) or 'ddim'.
      num_sampling_steps, eta: DDIM's step count (default: all N diffusion steps) and stochasticity
        (0 = deterministic).
      clip_x0: clip the x0 estimates to [-1, 1] (the paper's).
    """

    task: LatentDiffusionTask
    params: object
    window_chunks: int
    sampler: str = "ddpm"
    num_sampling_steps: int | None = None
    eta: float = 0.0
    clip_x0: bool = True

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {SAMPLERS}")
        self.latent_dim = int(self.params["output"]["kernel"].shape[-1])  # d, also when the config left it open
        self._mesh = sharding.local_mesh()  # this process's devices: each process makes its own chunks
        self._params = jax.device_put(self.params, sharding.replicated(self._mesh))
        self._compiled: dict[tuple, sharding.ShardedApply] = {}

    # ---- the Generator interface ----------------------------------------------------------------
    def sample(self, rng: jax.Array, num_samples: int) -> jax.Array:
        """x [num_samples, k, d] drawn from the prior."""
        return self.trajectory(rng, num_samples).x0

    def infill(self, rng: jax.Array, known: jax.Array, known_mask: jax.Array) -> jax.Array:
        """Fills the positions where known_mask [k] is False (paper Algorithm 1, fixed); the known
        positions of `known` [n, k, d] come back exactly. A prefix mask is continuation."""
        return self.trajectory(rng, len(known), known=known, known_mask=known_mask).x0

    # ---- beyond the interface ---------------------------------------------------------------------
    def variation(self, rng: jax.Array, x0: jax.Array, strength: float) -> jax.Array:
        """x0 [n, k, d] diffused to step round(strength * N) and denoised back: strength near 0 keeps
        x0, 1 forgets it. Uses the generator's sampler (ancestral = every step with eta 1)."""
        x0 = self._check_sequences(x0, "x0")
        key = ("variation", float(strength))
        if key not in self._compiled:
            num_steps, eta = (None, 1.0) if self.sampler == "ddpm" else (self._ddim_steps(strength), self.eta)

            def run(params, rng, x0):
                return gaussian.variation(self._eps_fn(params), self.task.schedule, rng, x0, strength,
                                          num_steps=num_steps, eta=eta, clip_x0=self.clip_x0).x0

            self._compiled[key] = sharding.ShardedApply(run, num_replicated=2, mesh=self._mesh, rng_index=1)
        return self._compiled[key](self._params, rng, x0)

    def trajectory(self, rng: jax.Array, num_samples: int, every: int = 0, known: jax.Array | None = None,
                   known_mask: jax.Array | None = None) -> gaussian.Sample:
        """The reverse process with, when every > 0, the x0 estimates after every `every` steps
        (trajectory [R, n, k, d], for the paper's Fig. 3 metrics along the process)."""
        if known is not None:
            known = self._check_sequences(known, "known")
            mask = check_infill_inputs(known, known_mask, self.window_chunks, self.latent_dim)
            num_samples = len(known)
        else:
            mask = None
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        key = ("reverse", every, None if mask is None else mask.tobytes())
        if key not in self._compiled:
            self._compiled[key] = sharding.ShardedApply(self._reverse_fn(every, mask), num_replicated=2,
                                                        out_batch_axes=(0, 1 if every else None), mesh=self._mesh,
                                                        rng_index=1)
        known = jnp.zeros((num_samples, self.window_chunks, self.latent_dim)) if known is None else known
        x0, trajectory = self._compiled[key](self._params, rng, known)
        steps = None if not every else gaussian.trajectory_steps(self.task.schedule.num_steps, self._steps(), every)
        return gaussian.Sample(x0, trajectory, steps)

    # ---- internals ----------------------------------------------------------------------------------
    def _eps_fn(self, params) -> gaussian.EpsFn:
        return self.task.eps_fn(params)

    def _steps(self) -> int:
        """Reverse steps of a full run: all N for ancestral sampling, `num_sampling_steps` (default N) for DDIM."""
        all_steps = self.task.schedule.num_steps
        return all_steps if self.sampler == "ddpm" else self.num_sampling_steps or all_steps

    def _ddim_steps(self, strength: float) -> int:
        """DDIM steps of a variation: the same step density as a full run, at least one."""
        return max(1, round(self._steps() * strength))

    def _reverse_fn(self, every: int, mask: np.ndarray | None) -> Callable:
        mask3 = None if mask is None else jnp.asarray(mask)[None, :, None]  # [1, k, 1]

        def run(params, rng, known):
            shape = known.shape  # [padded n, k, d]
            conditioning = {} if mask3 is None else {"known": known, "known_mask": mask3}
            common = dict(clip_x0=self.clip_x0, trajectory_every=every, **conditioning)
            eps = self._eps_fn(params)
            if self.sampler == "ddpm":
                result = gaussian.ddpm_sample(eps, self.task.schedule, rng, shape, **common)
            else:
                result = gaussian.ddim_sample(eps, self.task.schedule, rng, shape, num_steps=self._steps(),
                                              eta=self.eta, **common)
            return result.x0, result.trajectory

        return run

    def _check_sequences(self, x: jax.Array, name: str) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window_chunks, self.latent_dim):
            raise ValueError(f"{name} must have shape [n, {self.window_chunks}, {self.latent_dim}], got {x.shape}")
        return x
