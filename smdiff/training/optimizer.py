"""Optimizers, learning-rate schedules and the EMA of parameters.

The papers all use Adam with an exponentially decaying learning rate and global-norm gradient
clipping: Mittal et al. x0.98 every 4000 steps (staircase); MusicVAE x0.9999 every step towards a floor
of 1e-5 (Magenta computes `(lr - min_lr) * decay_rate**step + min_lr`, which is what
`min_learning_rate` means here).
"""
import dataclasses

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam with exponential learning-rate decay and optional global-norm clipping.

    Attributes:
      learning_rate: initial learning rate.
      decay_steps: steps per decay period (`transition_steps` in optax).
      decay_rate: factor per period; 1.0 keeps the rate constant.
      staircase: decay in whole periods (paper) rather than continuously.
      min_learning_rate: the floor the rate decays towards (Magenta style asymptote; 0 = none).
      clip_norm: global gradient-norm clip; 0 disables clipping.
      zero_gradients_above_norm: Magenta's `grad_norm_clip_to_zero`: a step whose unclipped gradient norm
        exceeds this feeds Adam zero gradients instead (0 = off).
      b1, b2, eps: Adam's moment decays and epsilon.
    """

    learning_rate: float = 1e-3
    decay_steps: int = 4000
    decay_rate: float = 0.98
    staircase: bool = True
    min_learning_rate: float = 0.0
    clip_norm: float = 1.0
    zero_gradients_above_norm: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if self.learning_rate <= 0 or self.min_learning_rate < 0 or self.min_learning_rate > self.learning_rate:
            raise ValueError(f"need 0 <= min_learning_rate <= learning_rate and learning_rate > 0: {self}")
        if self.decay_steps <= 0 or not 0 < self.decay_rate <= 1:
            raise ValueError(f"need decay_steps > 0 and 0 < decay_rate <= 1: {self}")
        if self.clip_norm < 0 or self.zero_gradients_above_norm < 0:
            raise ValueError(f"clip_norm and zero_gradients_above_norm must be >= 0 (0 disables them): {self}")

    def schedule(self) -> optax.Schedule:
        """step -> learning rate."""
        decaying = optax.exponential_decay(
            init_value=self.learning_rate - self.min_learning_rate,
            transition_steps=self.decay_steps,
            decay_rate=self.decay_rate,
            staircase=self.staircase)
        return lambda step: decaying(step) + self.min_learning_rate

    def make(self) -> optax.GradientTransformation:
        """The optax transformation: zero huge gradients, clip (each if enabled), then Adam with the schedule."""
        stages = []
        if self.zero_gradients_above_norm:
            stages.append(zero_gradients_above_norm(self.zero_gradients_above_norm))
        if self.clip_norm:
            stages.append(optax.clip_by_global_norm(self.clip_norm))
        stages.append(optax.adam(self.schedule(), b1=self.b1, b2=self.b2, eps=self.eps))
        return optax.chain(*stages)


def zero_gradients_above_norm(max_norm: float) -> optax.GradientTransformation:
    """Replaces the whole gradient by zeros when its global norm exceeds `max_norm` (Magenta's guard)."""

    def zero_if_too_large(updates, params=None):
        del params
        keep = optax.global_norm(updates) <= max_norm
        return jax.tree.map(lambda g: jnp.where(keep, g, jnp.zeros_like(g)), updates)

    return optax.stateless(zero_if_too_large)


def ema_decay_at(decay: float, step: jax.Array) -> jax.Array:
    """The decay of update number `step` (0 for the first): min(decay, (1 + step) / (10 + step)), the
    warm-up of TF's ExponentialMovingAverage(num_updates), so that a short run's EMA is not mostly its
    initialisation (plain 0.999 keeps 74% of it after 300 steps)."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema_params, params, decay: float, step: jax.Array):
    """One step of the exponential moving average: ema <- d * ema + (1 - d) * params, d = ema_decay_at."""
    d = ema_decay_at(decay, step)
    return jax.tree.map(lambda e, p: d.astype(e.dtype) * e + (1.0 - d).astype(e.dtype) * p.astype(e.dtype),
                        ema_params, params)

