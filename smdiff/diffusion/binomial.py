"""Binomial (Bernoulli) diffusion on binary piano rolls (Atassi 2023), as plain jnp functions.

Forward process, in closed form from the clean roll x0 (every cell independent):

    q(x_t | x0) = Bernoulli(x0 * alpha_t + r * (1 - alpha_t)),   alpha_t = 1 - beta_t,  beta_t = t / T,

with r the data's density of ones, t = 0..T (x_0 = the data, x_T ~ Bernoulli(r)). It is the chain that
at step t keeps a cell with probability gamma_t = alpha_t / alpha_{t-1} and otherwise redraws it from
Bernoulli(r); the exact posterior below is derived from that one-step kernel.

A denoiser is a function `(x_t [B, T, P] float in {0, 1}, t [B] int) -> x0 probabilities [B, T, P]`; every function
here works cell by cell, so voice-channel rolls [B, T, P, V] go through unchanged.
Conditioning needs no retraining: the known cells (`mask` True) are replaced at every step by a
forward-noised copy of the known roll, so they come out exactly equal to it at t = 0. RePaint-style
resampling (Lugmayr et al. 2022; `num_resamplings`) repeats each reverse step after re-noising its clamped
result back up (`renoise`), so the generated cells get more than one look at the clamped ones. A conditioned
denoiser (one that also reads the known cells) is passed in as a closure; it is clamped the same way.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]
SAMPLERS = ("posterior", "paper")


@dataclasses.dataclass(frozen=True)
class BinomialProcess:
    """The linear-beta binomial process: T steps towards Bernoulli(density)."""

    density: float  # r, the mean density of ones of the training rolls
    num_steps: int = 100  # T

    def __post_init__(self):
        if not 0.0 < self.density < 1.0:
            raise ValueError(f"density must be in (0, 1), got {self.density}")
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be positive, got {self.num_steps}")

    def beta(self, t: jax.Array) -> jax.Array:
        """beta_t = t / T: the probability that a cell has been redrawn from the noise by step t."""
        return jnp.asarray(t, jnp.float32) / self.num_steps

    def alpha(self, t: jax.Array) -> jax.Array:
        return 1.0 - self.beta(t)


def _per_example(value: jax.Array, like: jax.Array) -> jax.Array:
    """Broadcasts a per-example value [B] (or a scalar) against an array [B, ...]."""
    value = jnp.asarray(value)
    return value.reshape(value.shape + (1,) * (like.ndim - value.ndim))


def marginal_probability(process: BinomialProcess, x0: jax.Array, t: jax.Array) -> jax.Array:
    """P(x_t = 1 | x0) = x0 alpha_t + r (1 - alpha_t); x0 [B, ...] in [0, 1], t [B] -> [B, ...]."""
    alpha = _per_example(process.alpha(t), x0)
    return x0 * alpha + process.density * (1.0 - alpha)


def q_sample(process: BinomialProcess, rng: jax.Array, x0: jax.Array, t: jax.Array) -> jax.Array:
    """x_t ~ q(x_t | x0), float {0, 1} [B, ...]."""
    probability = marginal_probability(process, x0, t)
    return jax.random.bernoulli(rng, probability).astype(jnp.float32)


def posterior_probability(
    process: BinomialProcess, x_t: jax.Array, x0_probability: jax.Array, t: jax.Array, s: jax.Array | None = None
) -> jax.Array:
    """P(x_s = 1 | x_t) for 0 <= s < t (default s = t - 1) when the denoiser says P(x0 = 1 | x_t) = x0_probability.

    Exact for the binomial chain: sum over x0 in {0, 1} of P(x0 | x_t) q(x_s = 1 | x_t, x0), with
    q(x_s | x_t, x0) from Bayes: prior q(x_s | x0) times the likelihood q(x_t | x_s), which keeps a cell
    with probability alpha_t / alpha_s and otherwise redraws it from Bernoulli(r). s < t - 1 skips steps.
    """
    s = t - 1 if s is None else s
    r = process.density
    alpha_s = _per_example(process.alpha(s), x_t)
    keep = _per_example(process.alpha(t) / process.alpha(s), x_t)
    # q(x_t | x_s = 1) and q(x_t | x_s = 0), evaluated at the observed x_t.
    p_xt_one = keep + (1.0 - keep) * r
    p_xt_zero = (1.0 - keep) * r
    likelihood_one = jnp.where(x_t > 0.5, p_xt_one, 1.0 - p_xt_one)
    likelihood_zero = jnp.where(x_t > 0.5, p_xt_zero, 1.0 - p_xt_zero)

    def given_x0(x0_value: float) -> jax.Array:
        prior_one = x0_value * alpha_s + r * (1.0 - alpha_s)  # q(x_s = 1 | x0)
        joint_one = likelihood_one * prior_one
        return joint_one / (joint_one + likelihood_zero * (1.0 - prior_one))

    return x0_probability * given_x0(1.0) + (1.0 - x0_probability) * given_x0(0.0)


def posterior_step(
    process: BinomialProcess, rng: jax.Array, x_t: jax.Array, x0_probability: jax.Array, t: jax.Array,
    s: jax.Array | None = None,
) -> jax.Array:
    """Draws x_s (default s = t - 1) from the exact posterior given the predicted x0 probabilities."""
    probability = posterior_probability(process, x_t, x0_probability, t, s)
    return jax.random.bernoulli(rng, probability).astype(jnp.float32)


def paper_step(
    process: BinomialProcess,
    rng: jax.Array,
    x_noise: jax.Array,
    x0_probability: jax.Array,
    s: jax.Array,
) -> jax.Array:
    """Atassi's sampler, one step to x_s: threshold the prediction at 0.5; where it differs from the
    starting noise x_T (the XOR), revert to x_T with probability beta_s.

    beta_s (the noise level of the state being produced; beta_{t-1} for single steps) makes
    x_s = x0-hat with probability alpha_s and noise otherwise, i.e. the forward marginal at s around
    x0-hat; at s = 0 it is 0, so the output is the last prediction.
    """
    prediction = (x0_probability > 0.5).astype(jnp.float32)
    differs = prediction != x_noise
    revert = jax.random.uniform(rng, x_noise.shape) < _per_example(process.beta(s), x_noise)
    return jnp.where(differs & revert, x_noise, prediction)


def renoise(process: BinomialProcess, rng: jax.Array, x_s: jax.Array, s: jax.Array, t: jax.Array) -> jax.Array:
    """x_t ~ q(x_t | x_s) for s < t [B]: each cell kept with probability alpha_t / alpha_s, else redrawn from
    Bernoulli(r) (the forward chain's kernel over several steps)."""
    keep_rng, draw_rng = jax.random.split(rng)
    keep = jax.random.uniform(keep_rng, x_s.shape) < _per_example(process.alpha(t) / process.alpha(s), x_s)
    return jnp.where(keep, x_s, jax.random.bernoulli(draw_rng, process.density, x_s.shape).astype(jnp.float32))


def clamp(
    process: BinomialProcess, rng: jax.Array, x: jax.Array, known: jax.Array, mask: jax.Array, t: jax.Array
) -> jax.Array:
    """Replaces the known cells (mask True) of x [B, ...] by a copy of `known` noised to step t."""
    return jnp.where(mask, q_sample(process, rng, known, t), x)


def sample(
    process: BinomialProcess,
    denoise: Denoiser,
    rng: jax.Array,
    shape: tuple[int, ...],
    sampler: str = "posterior",
    known: jax.Array | None = None,
    mask: jax.Array | None = None,
    start: jax.Array | None = None,
    start_step: int | None = None,
    num_sampling_steps: int | None = None,
    return_trajectory: bool = False,
    num_resamplings: int = 1,
    noise: jax.Array | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Runs the reverse process from step `start_step` (default T) down to 0.

    num_sampling_steps (default: all, one per process step) < start_step jumps between evenly spaced
    steps (the posterior is exact for any jump; the paper's sampler reverts with that step's beta).

    shape: [B, time, pitch] (or [B, time, pitch, V]). known/mask (optional, broadcastable to shape): cells to clamp
    to `known`.
    start: x at `start_step` (default: a draw from Bernoulli(r), the process's x_T).
    noise: the paper sampler's revert target, a Bernoulli(r) roll (default: `start`, which is that roll when
    the run starts at T; a run from a partially noised start passes the noise its start was drawn from).
    num_resamplings (RePaint, needs known/mask): each reverse step t -> s is taken that many times, the first
    ones re-noised from s back to t (`renoise`); denoiser calls: num_sampling_steps * num_resamplings.
    Returns x0 float {0, 1} [B, time, pitch], and with `return_trajectory` also the states after each
    reverse step (the last is x_0) as bool [num_sampling_steps, B, time, pitch].
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if (known is None) != (mask is None):
        raise ValueError("give both `known` and `mask`, or neither")
    if num_resamplings < 1 or (num_resamplings > 1 and known is None):
        raise ValueError(f"num_resamplings must be >= 1, and > 1 only with known cells, got {num_resamplings}")
    start_step = process.num_steps if start_step is None else int(start_step)
    if not 1 <= start_step <= process.num_steps:
        raise ValueError(f"start_step must be in [1, {process.num_steps}], got {start_step}")
    num_sampling_steps = start_step if num_sampling_steps is None else int(num_sampling_steps)
    if not 1 <= num_sampling_steps <= start_step:
        raise ValueError(f"num_sampling_steps must be in [1, {start_step}], got {num_sampling_steps}")
    steps = np.unique(np.round(np.linspace(0, start_step, num_sampling_steps + 1)).astype(np.int32))[::-1]
    batch = shape[0]
    rng, start_rng, clamp_rng = jax.random.split(rng, 3)
    if start is None:
        start = jax.random.bernoulli(start_rng, process.density, shape).astype(jnp.float32)
    noise = start if noise is None else noise
    if known is not None:
        known = jnp.broadcast_to(jnp.asarray(known, jnp.float32), shape)
        mask = jnp.broadcast_to(jnp.asarray(mask, bool), shape)
        start = clamp(process, clamp_rng, start, known, mask, jnp.full((batch,), start_step))

    def reverse_step(x_t, inputs):
        t, s, step_rng = inputs
        t_batch, s_batch = jnp.full((batch,), t), jnp.full((batch,), s)

        def denoise_and_clamp(x_t, rng):
            step_rng, clamp_rng = jax.random.split(rng)
            x0_probability = denoise(x_t, t_batch)
            if sampler == "posterior":
                x_s = posterior_step(process, step_rng, x_t, x0_probability, t_batch, s_batch)
            else:
                x_s = paper_step(process, step_rng, noise, x0_probability, s_batch)
            if known is not None:
                x_s = clamp(process, clamp_rng, x_s, known, mask, s_batch)
            return x_s

        def resample(x_t, rng):  # RePaint: down to s, then back up to t
            rng, renoise_rng = jax.random.split(rng)
            return renoise(process, renoise_rng, denoise_and_clamp(x_t, rng), s_batch, t_batch), None

        if num_resamplings > 1:
            step_rng, *resample_rngs = jax.random.split(step_rng, num_resamplings)
            x_t, _ = jax.lax.scan(resample, x_t, jnp.stack(resample_rngs))
        x_s = denoise_and_clamp(x_t, step_rng)
        return x_s, (x_s > 0.5) if return_trajectory else None

    pairs = (jnp.asarray(steps[:-1]), jnp.asarray(steps[1:]), jax.random.split(rng, len(steps) - 1))
    x0, trajectory = jax.lax.scan(reverse_step, start, pairs)
    return (x0, trajectory) if return_trajectory else x0


def variation(
    process: BinomialProcess,
    denoise: Denoiser,
    rng: jax.Array,
    x0: jax.Array,
    strength: float,
    sampler: str = "posterior",
    num_sampling_steps: int | None = None,
) -> jax.Array:
    """A variation of real rolls x0 [B, time, pitch]: noise them to step round(strength * T), denoise.

    strength in (0, 1]: near 0 returns (almost) the piece, 1 ignores it (an unconditional sample).
    The start is x0 with each cell redrawn from a Bernoulli(r) roll with probability beta; the paper
    sampler reverts to that roll (not to the start, which would hold x0's cells at every level and so
    depart from the forward marginal the sampler assumes).
    """
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    start_step = max(1, round(strength * process.num_steps))
    noise_rng, sample_rng = jax.random.split(rng)
    x0 = jnp.asarray(x0, jnp.float32)
    keep_rng, draw_rng = jax.random.split(noise_rng)
    noise = jax.random.bernoulli(draw_rng, process.density, x0.shape).astype(jnp.float32)
    keep = jax.random.uniform(keep_rng, x0.shape) < process.alpha(start_step)
    start = jnp.where(keep, x0, noise)  # a draw of q(x_start | x0)
    if num_sampling_steps is not None:  # the same step size as a full-length run of num_sampling_steps
        num_sampling_steps = max(1, min(start_step, round(num_sampling_steps * strength)))
    return sample(process, denoise, sample_rng, x0.shape, sampler, start=start, start_step=start_step,
                  num_sampling_steps=num_sampling_steps, noise=noise)
