"""Sampling piano rolls from a trained binomial-diffusion U-Net: unconditional, infilling, continuation,
harmonization and variation. Known cells are always clamped (no retraining: the paper's method), optionally
with RePaint-style resampling; a conditioned U-Net can also read them as inputs (`conditioning='model'`).

Unlike the latent generators of `base.py`, this one works on binary rolls [n, time, pitch] of the
`pianorolls` dataset, or voice-channel rolls [n, time, pitch, V] (`bach_chorales_voices`: S, A, T, B) for a model
trained on them; `infill` keeps that interface's meaning with time steps in place of latents
(`known_mask` [time] bool, True = given, returned exactly).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from smdiff.diffusion import binomial, conditioning as conditioning_masks
from smdiff.tasks.binomial import BinomialTask
from smdiff.training import sharding

CONDITIONINGS = ("clamp", "model")


def melody_mask(melody: np.ndarray) -> np.ndarray:
    """Cells fixed by a top-voice melody roll [..., time, pitch]: at every frame where the melody sounds,
    its highest note and every pitch above it (nothing sounds above the top voice); nothing where it rests."""
    melody = np.asarray(melody).astype(bool)
    num_pitches = melody.shape[-1]
    highest = num_pitches - 1 - np.argmax(melody[..., ::-1], axis=-1)  # [..., time]
    sounding = melody.any(axis=-1)  # [..., time]
    return sounding[..., None] & (np.arange(num_pitches) >= highest[..., None])


def soprano_channel_condition(soprano: np.ndarray, num_voices: int) -> tuple[np.ndarray, np.ndarray]:
    """(known float [n, time, pitch, V], given bool of its shape) of voice-channel rolls whose soprano channel is
    the given rolls soprano [n, time, pitch], given whole, and whose other voices are to be generated."""
    soprano = np.asarray(soprano, np.float32)
    given = np.asarray(conditioning_masks.voice_channel_mask((*soprano.shape, num_voices), 0))
    return np.where(given, soprano[..., None], 0.0).astype(np.float32), given


class PianorollGenerator:
    """Holds a BinomialTask and its params; every method returns float {0, 1} rolls [n, *roll_shape]
    (roll_shape: (time, pitch), or (time, pitch, V) for a model of voice-channel rolls).

    sampler: 'posterior' (exact binomial posterior given the predicted x0) or 'paper' (Atassi's XOR
    sampler); num_sampling_steps: reverse steps per sample (default T, the paper's 100).
    conditioning: how the known cells steer the generated ones: 'clamp' (only by clamping; a conditioned
    model then reads an empty mask) or 'model' (a conditioned model also reads them as inputs; clamped too).
    num_resamplings > 1: RePaint-style resampling of every reverse step (`binomial.sample`), that many
    denoiser calls per step.
    Each request is one jitted reverse process with its batch split over this process's devices, in row
    groups with their own keys (`smdiff.training.sharding.ShardedApply`'s group mode): the rolls do not
    depend on the number of devices.
    """

    def __init__(self, task: BinomialTask, params, roll_shape: tuple[int, ...], sampler: str = "posterior",
                 num_sampling_steps: int | None = None, conditioning: str = "clamp", num_resamplings: int = 1):
        if sampler not in binomial.SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {binomial.SAMPLERS}")
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {conditioning!r}; choose one of {CONDITIONINGS}")
        if conditioning == "model" and not task.conditioned:
            raise ValueError("conditioning='model' needs a conditioned U-Net (UNetConfig.conditioned = True)")
        self.task, self.roll_shape = task, tuple(roll_shape)
        self.sampler, self.num_sampling_steps = sampler, num_sampling_steps
        self.conditioning, self.num_resamplings = conditioning, num_resamplings
        self._unconditional = sharding.ShardedApply(functools.partial(self._reverse, return_trajectory=False),
                                                    num_replicated=2, rng_index=1)
        self._with_trajectory = sharding.ShardedApply(functools.partial(self._reverse, return_trajectory=True),
                                                      num_replicated=2, out_batch_axes=(0, 1), rng_index=1)
        self._clamped = sharding.ShardedApply(self._reverse_clamped, num_replicated=2, rng_index=1)
        self._variations: dict[float, sharding.ShardedApply] = {}
        self.params = self._unconditional.replicate(params)

    def _reverse(self, params, rng, template, return_trajectory: bool):
        """template [n, *roll_shape] gives only the batch's shape (after padding)."""
        return binomial.sample(self.task.process, self.task.denoiser(params), rng, template.shape, self.sampler,
                               num_sampling_steps=self.num_sampling_steps, return_trajectory=return_trajectory)

    def _reverse_clamped(self, params, rng, known, mask):
        reads_known = self.conditioning == "model"
        denoiser = self.task.denoiser(params, known, mask) if reads_known else self.task.denoiser(params)
        return binomial.sample(self.task.process, denoiser, rng, known.shape, self.sampler, known=known, mask=mask,
                               num_sampling_steps=self.num_sampling_steps, num_resamplings=self.num_resamplings)

    def _check_rolls(self, rolls: np.ndarray, what: str) -> jax.Array:
        rolls = jnp.asarray(rolls, jnp.float32)
        if rolls.shape[1:] != self.roll_shape:
            raise ValueError(f"{what} must be rolls [n, {', '.join(map(str, self.roll_shape))}], got {rolls.shape}")
        return rolls

    @property
    def voice_channels(self) -> bool:
        """Whether the model makes voice-channel rolls [n, time, pitch, V]."""
        return len(self.roll_shape) == 3

    def sample(self, rng: jax.Array, num_samples: int) -> jax.Array:
        """Unconditional rolls [num_samples, *roll_shape]."""
        return self._unconditional(self.params, rng, self._template(num_samples))

    def sample_with_trajectory(self, rng: jax.Array, num_samples: int) -> tuple[jax.Array, jax.Array]:
        """(rolls [n, *roll_shape], every reverse state as bool [steps, n, *roll_shape], last = rolls)."""
        return self._with_trajectory(self.params, rng, self._template(num_samples))

    def _template(self, num_samples: int) -> jax.Array:
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        return jnp.zeros((num_samples, *self.roll_shape), jnp.float32)

    def complete(self, rng: jax.Array, known: np.ndarray, cell_mask: np.ndarray) -> jax.Array:
        """Generates the cells where `cell_mask` (broadcastable to known [n, *roll_shape]) is False."""
        known = self._check_rolls(known, "known")
        mask = jnp.broadcast_to(jnp.asarray(cell_mask, bool), known.shape)
        return self._clamped(self.params, rng, known, mask)

    def infill(self, rng: jax.Array, known: np.ndarray, known_mask: np.ndarray) -> jax.Array:
        """Regenerates the time steps where `known_mask` [time] is False (all pitches and voices); continuation is
        a prefix mask, the paper's middle-half infilling a mask of the two outer quarters."""
        known_mask = np.asarray(known_mask)
        if known_mask.dtype != np.bool_ or known_mask.shape != (self.roll_shape[0],):
            raise ValueError(f"known_mask must be bool [{self.roll_shape[0]}], got {known_mask.dtype} {known_mask.shape}")
        return self.complete(rng, known, known_mask.reshape(known_mask.shape + (1,) * (len(self.roll_shape) - 1)))

    def harmonize(self, rng: jax.Array, melody: np.ndarray) -> jax.Array:
        """Adds lower voices under a given top-voice melody roll [n, time, pitch]: the cells of `melody_mask`
        given; for voice channels, the melody is the whole soprano channel and the other voices are generated."""
        if not self.voice_channels:
            melody = np.asarray(self._check_rolls(melody, "melody"))
            return self.complete(rng, melody, melody_mask(melody))
        melody = np.asarray(melody, np.float32)  # [n, time, pitch]
        if melody.ndim != 3 or melody.shape[1:] != self.roll_shape[:2]:
            raise ValueError(f"melody must be rolls [n, {self.roll_shape[0]}, {self.roll_shape[1]}], "
                             f"got {melody.shape}")
        return self.complete(rng, *soprano_channel_condition(melody, self.roll_shape[-1]))

    def vary(self, rng: jax.Array, rolls: np.ndarray, strength: float) -> jax.Array:
        """Variations of real rolls [n, *roll_shape]: noise them to step round(strength * T) and denoise
        (strength in (0, 1])."""
        strength = float(strength)
        if strength not in self._variations:
            self._variations[strength] = sharding.ShardedApply(
                lambda params, rng, rolls: binomial.variation(
                    self.task.process, self.task.denoiser(params), rng, rolls, strength, self.sampler,
                    self.num_sampling_steps), num_replicated=2, rng_index=1)
        return self._variations[strength](self.params, rng, self._check_rolls(rolls, "rolls"))
