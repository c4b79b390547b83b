"""Gaussian diffusion (DDPM) as plain functions of arrays: Mittal et al. 2021, REFERENCE.md section 1.

Conventions. Steps are t = 1..N; every per-step array is indexed by t directly, with a t = 0 entry
(alpha_bar_0 = 1, beta_0 = 0) so that "the step before t" is always index t - 1. The denoiser is any
`eps_fn(x_t [B, ...], noise_level [B]) -> eps [B, ...]` receiving the continuous noise level
sqrt(alpha_bar), as in WaveGrad. Data are expected in [-1, 1] (x0 estimates are clipped to it).

Samplers run the whole reverse process as one `lax.scan` (jit them with the denoiser closed over); the
batch dimension is independent, so sharding the inputs over devices shards the sampling. Every sampler
takes an optional `known`/`known_mask` pair: at each step the known entries are replaced by a copy of the
known sample diffused to the new step t-1 (paper Algorithm 1, with the released code's two bugs fixed:
it diffused to t instead of t-1 and started from U[0, 1) instead of N(0, I)), so they come out exactly.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EpsFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


class Schedule(NamedTuple):
    """Per-step constants, indexed by t = 0..N (index 0 is the clean data)."""

    betas: jnp.ndarray  # [N + 1], betas[0] = 0
    alpha_bars: jnp.ndarray  # [N + 1], alpha_bars[0] = 1, alpha_bars[t] = prod_{s<=t} (1 - beta_s)
    # [N + 1] 1 - alpha_bars, from float64: in float32, 1 - alpha_bar_1 = 1e-6 would be 6% off.
    one_minus_alpha_bars: jnp.ndarray

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0] - 1


class Sample(NamedTuple):
    """A sampler's result: the final x0 and, when asked for, the x0 estimates along the way."""

    x0: jnp.ndarray  # [B, ...]
    trajectory: jnp.ndarray | None  # [R, B, ...] x0 estimates after every `trajectory_every`-th step
    trajectory_steps: np.ndarray | None  # [R] the step t at which each estimate was made


def linear_schedule(num_steps: int = 1000, beta_start: float = 1e-6, beta_end: float = 0.01) -> Schedule:
    """The paper's linear beta schedule (N=1000, beta_1 = 1e-6, beta_N = 0.01)."""
    if num_steps < 1 or not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(f"bad schedule: num_steps={num_steps}, betas {beta_start}..{beta_end}")
    betas = np.concatenate([[0.0], np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)])
    log_alpha_bars = np.cumsum(np.log1p(-betas))  # float64 throughout, stored in float32
    return Schedule(
        jnp.asarray(betas, jnp.float32),
        jnp.asarray(np.exp(log_alpha_bars), jnp.float32),
        jnp.asarray(-np.expm1(log_alpha_bars), jnp.float32),
    )


def _per_example(values: jnp.ndarray, like: jnp.ndarray) -> jnp.ndarray:
    """[B] -> [B, 1, ..., 1] broadcastable against `like` [B, ...]."""
    return jnp.reshape(values, values.shape + (1,) * (like.ndim - values.ndim))


def q_sample(
    x0: jnp.ndarray, alpha_bar: jnp.ndarray, noise: jnp.ndarray, one_minus_alpha_bar: jnp.ndarray | None = None
) -> jnp.ndarray:
    """x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise; alpha_bar scalar or [B].

    `one_minus_alpha_bar`, where known more precisely than 1 - alpha_bar (a Schedule's), is used as is.
    """
    alpha_bar = jnp.asarray(alpha_bar)
    one_minus_alpha_bar = 1.0 - alpha_bar if one_minus_alpha_bar is None else jnp.asarray(one_minus_alpha_bar)
    return _per_example(jnp.sqrt(alpha_bar), x0) * x0 + _per_example(jnp.sqrt(one_minus_alpha_bar), x0) * noise


def q_mean_variance(schedule: Schedule, x0: jnp.ndarray, t: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Mean [B, ...] and variance [B, 1, ...] of q(x_t | x0) at integer steps t [B] (or a scalar)."""
    return _per_example(jnp.sqrt(schedule.alpha_bars[t]), x0) * x0, _per_example(schedule.one_minus_alpha_bars[t], x0)


def posterior_mean_variance(
    schedule: Schedule, x0: jnp.ndarray, x_t: jnp.ndarray, t: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Mean and variance (beta_tilde_t) of q(x_{t-1} | x_t, x0), for t >= 1 ([B] or scalar)."""
    noise = _per_example(schedule.one_minus_alpha_bars[t], x_t)
    noise_prev = _per_example(schedule.one_minus_alpha_bars[t - 1], x_t)
    alpha_bar_prev = _per_example(schedule.alpha_bars[t - 1], x_t)
    beta = _per_example(schedule.betas[t], x_t)
    x0_coef = jnp.sqrt(alpha_bar_prev) * beta / noise
    x_t_coef = jnp.sqrt(1.0 - beta) * noise_prev / noise
    variance = beta * noise_prev / noise
    return x0_coef * x0 + x_t_coef * x_t, variance


def sample_noise_level(schedule: Schedule, rng: jax.Array, batch_size: int) -> jnp.ndarray:
    """WaveGrad's continuous noise level: t ~ U{1..N}, alpha_bar ~ U(alpha_bar_t, alpha_bar_{t-1}). [B]."""
    step_rng, level_rng = jax.random.split(rng)
    t = jax.random.randint(step_rng, (batch_size,), 1, schedule.num_steps + 1)
    upper, lower = schedule.alpha_bars[t - 1], schedule.alpha_bars[t]
    return lower + (upper - lower) * jax.random.uniform(level_rng, (batch_size,))


def _squared_error(eps: jnp.ndarray, eps_hat: jnp.ndarray) -> jnp.ndarray:
    """Mean over all but the batch axis of (eps - eps_hat)^2: [B, ...] -> [B]."""
    return jnp.mean(jnp.square(eps - eps_hat), axis=tuple(range(1, eps.ndim)))


def training_loss(eps_fn: EpsFn, schedule: Schedule, x0: jnp.ndarray, rng: jax.Array) -> jnp.ndarray:
    """Per-example epsilon-prediction loss at a continuous noise level: [B, ...] -> [B]."""
    level_rng, noise_rng = jax.random.split(rng)
    alpha_bar = sample_noise_level(schedule, level_rng, x0.shape[0])
    eps = jax.random.normal(noise_rng, x0.shape, x0.dtype)
    return _squared_error(eps, eps_fn(q_sample(x0, alpha_bar, eps), jnp.sqrt(alpha_bar)))


def denoising_error(eps_fn: EpsFn, schedule: Schedule, x0: jnp.ndarray, t: int, rng: jax.Array) -> jnp.ndarray:
    """Per-example epsilon-prediction error at the fixed step t (an evaluation probe): [B]."""
    eps = jax.random.normal(rng, x0.shape, x0.dtype)
    x_t = q_sample(x0, schedule.alpha_bars[t], eps, schedule.one_minus_alpha_bars[t])
    return _squared_error(eps, eps_fn(x_t, jnp.full((x0.shape[0],), jnp.sqrt(schedule.alpha_bars[t]))))


# ---- Reverse process ------------------------------------------------------------------------------
# An update maps (x_t, t, s, noise) to (x_s, x0_hat) for a step from t down to s < t.
_Update = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray], tuple[jnp.ndarray, jnp.ndarray]]


def _estimate_x0(eps_fn: EpsFn, schedule: Schedule, x_t: jnp.ndarray, t: jnp.ndarray, clip_x0: bool):
    """Denoiser call at step t; returns (x0_hat, eps_hat consistent with the possibly clipped x0_hat)."""
    signal, noise = jnp.sqrt(schedule.alpha_bars[t]), jnp.sqrt(schedule.one_minus_alpha_bars[t])
    eps = eps_fn(x_t, jnp.full((x_t.shape[0],), signal))
    x0_hat = (x_t - noise * eps) / signal  # q_sample solved for x0
    if clip_x0:
        x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
        eps = (x_t - signal * x0_hat) / noise
    return x0_hat, eps


def _ancestral_update(eps_fn: EpsFn, schedule: Schedule, clip_x0: bool) -> _Update:
    """Ancestral DDPM: x_{t-1} ~ q(x_{t-1} | x_t, x0_hat), no noise at the last step."""

    def update(x_t, t, s, noise):
        del s  # always t - 1
        x0_hat, _ = _estimate_x0(eps_fn, schedule, x_t, t, clip_x0)
        mean, variance = posterior_mean_variance(schedule, x0_hat, x_t, t)
        return mean + jnp.where(t > 1, jnp.sqrt(variance), 0.0) * noise, x0_hat

    return update


def _ddim_update(eps_fn: EpsFn, schedule: Schedule, eta: float, clip_x0: bool) -> _Update:
    """DDIM (Song et al. 2021) from t to s < t; eta = 1 over all steps is ancestral DDPM."""

    def update(x_t, t, s, noise):
        x0_hat, eps = _estimate_x0(eps_fn, schedule, x_t, t, clip_x0)
        alpha_bar_s = schedule.alpha_bars[s]
        noise_t, noise_s = schedule.one_minus_alpha_bars[t], schedule.one_minus_alpha_bars[s]
        # 1 - alpha_bar_t / alpha_bar_s, written so that it stays precise for small t.
        step_noise = (noise_t - noise_s) / alpha_bar_s
        sigma = eta * jnp.sqrt(noise_s / noise_t * step_noise)
        direction = jnp.sqrt(jnp.maximum(noise_s - sigma**2, 0.0))
        return jnp.sqrt(alpha_bar_s) * x0_hat + direction * eps + sigma * noise, x0_hat

    return update


def _step_pairs(start: int, num_steps: int) -> np.ndarray:
    """[num_steps, 2] integer (t, s) pairs descending evenly from t = start to s = 0."""
    if not 1 <= num_steps <= start:
        raise ValueError(f"num_steps must be in 1..{start}, got {num_steps}")
    ts = np.round(np.linspace(start, 0, num_steps + 1)).astype(np.int32)
    return np.stack([ts[:-1], ts[1:]], axis=1)


def trajectory_steps(start: int, num_steps: int, every: int) -> np.ndarray:
    """[R] the steps t at which a sampler of `num_steps` steps down from `start` records x0 estimates."""
    return _step_pairs(start, num_steps)[every - 1 :: every, 0]


def _run_reverse(
    update: _Update,
    schedule: Schedule,
    rng: jax.Array,
    x_start: jnp.ndarray,
    pairs: np.ndarray,
    known: jnp.ndarray | None,
    known_mask: jnp.ndarray | None,
    trajectory_every: int,
) -> Sample:
    """Runs `update` over the (t, s) `pairs` from x_start, clamping known entries, as one nested scan."""
    if (known is None) != (known_mask is None):
        raise ValueError("pass both `known` and `known_mask`, or neither")
    num = len(pairs)
    every = trajectory_every or num
    if num % every:
        raise ValueError(f"trajectory_every={trajectory_every} must divide the {num} sampling steps")

    def one_step(x_t, pair):
        t, s = pair[0], pair[1]
        step_rng = jax.random.fold_in(rng, t)
        update_rng, known_rng = jax.random.split(step_rng)
        x_s, x0_hat = update(x_t, t, s, jax.random.normal(update_rng, x_t.shape, x_t.dtype))
        if known is not None:
            # The known sample diffused to the new step s (exactly `known` at s = 0).
            known_noise = jax.random.normal(known_rng, x_t.shape, x_t.dtype)
            known_s = q_sample(known, schedule.alpha_bars[s], known_noise, schedule.one_minus_alpha_bars[s])
            x_s = jnp.where(known_mask, known_s, x_s)
        return x_s, x0_hat

    def chunk(x_t, chunk_pairs):
        x_t, x0_hats = jax.lax.scan(one_step, x_t, chunk_pairs)
        return x_t, x0_hats[-1]

    chunks = jnp.asarray(pairs.reshape(num // every, every, 2))
    x0, recorded = jax.lax.scan(chunk, x_start, chunks)
    if not trajectory_every:
        return Sample(x0, None, None)
    return Sample(x0, recorded, trajectory_steps(int(pairs[0, 0]), num, every))


def ddpm_sample(
    eps_fn: EpsFn,
    schedule: Schedule,
    rng: jax.Array,
    shape: tuple[int, ...],
    *,
    known: jnp.ndarray | None = None,
    known_mask: jnp.ndarray | None = None,
    clip_x0: bool = True,
    trajectory_every: int = 0,
) -> Sample:
    """Ancestral sampling over all N steps from x_N ~ N(0, I).

    Args:
      shape: [B, ...] of the samples.
      known, known_mask: optional [B, ...] sample and a mask broadcastable to it (True = given); those
        entries are returned exactly (infilling, continuation = a prefix mask).
      trajectory_every: if > 0, also return the x0 estimates of every this-many steps (paper Fig. 3).
    """
    init_rng, rng = jax.random.split(rng)
    x_start = jax.random.normal(init_rng, shape)
    pairs = _step_pairs(schedule.num_steps, schedule.num_steps)
    update = _ancestral_update(eps_fn, schedule, clip_x0)
    return _run_reverse(update, schedule, rng, x_start, pairs, known, known_mask, trajectory_every)


def ddim_sample(
    eps_fn: EpsFn,
    schedule: Schedule,
    rng: jax.Array,
    shape: tuple[int, ...],
    *,
    num_steps: int,
    eta: float = 0.0,
    known: jnp.ndarray | None = None,
    known_mask: jnp.ndarray | None = None,
    clip_x0: bool = True,
    trajectory_every: int = 0,
) -> Sample:
    """DDIM over `num_steps` evenly spaced steps from x_N ~ N(0, I); eta = 0 is deterministic.

    Same arguments as `ddpm_sample`; `num_steps` in 1..N.
    """
    init_rng, rng = jax.random.split(rng)
    x_start = jax.random.normal(init_rng, shape)
    pairs = _step_pairs(schedule.num_steps, num_steps)
    update = _ddim_update(eps_fn, schedule, eta, clip_x0)
    return _run_reverse(update, schedule, rng, x_start, pairs, known, known_mask, trajectory_every)


def variation(
    eps_fn: EpsFn,
    schedule: Schedule,
    rng: jax.Array,
    x0: jnp.ndarray,
    strength: float,
    *,
    num_steps: int | None = None,
    eta: float = 1.0,
    known_mask: jnp.ndarray | None = None,
    clip_x0: bool = True,
    trajectory_every: int = 0,
) -> Sample:
    """Diffuses real x0 [B, ...] to step round(strength * N), then denoises it back (SDEdit style).

    strength in (0, 1]: 1 forgets x0 entirely, small values change little. By default every step is
    taken with eta = 1 (ancestral); `num_steps` < that takes DDIM steps. `known_mask` keeps entries of
    x0 exactly.
    """
    start = int(round(strength * schedule.num_steps))
    if not 0.0 < strength <= 1.0 or start < 1:
        raise ValueError(f"strength must be in (0, 1] and reach at least step 1, got {strength}")
    init_rng, rng = jax.random.split(rng)
    noise = jax.random.normal(init_rng, x0.shape, x0.dtype)
    x_start = q_sample(x0, schedule.alpha_bars[start], noise, schedule.one_minus_alpha_bars[start])
    pairs = _step_pairs(start, num_steps or start)
    update = _ddim_update(eps_fn, schedule, eta, clip_x0)
    known = None if known_mask is None else x0
    return _run_reverse(update, schedule, rng, x_start, pairs, known, known_mask, trajectory_every)
