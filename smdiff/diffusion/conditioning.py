"""Random conditioning masks for training one binomial-diffusion model that serves every piano-roll task.

A mask is bool [B, time, pitch], True = the cell is given (known), False = the model generates it. Each training
example draws one kind (`MASK_KINDS`, uniformly):
- nothing: an unconditional sample;
- top_voice: the highest sounding note at every step and every cell above it (harmonizing a melody; the
  cells `generators.pianoroll.melody_mask` fixes, read off the roll's own top voice);
- bottom_voice: the lowest sounding note and every cell below it (a given bass line);
- time_span: every step outside a random span [start, start + length) inside the roll, all pitches (infilling);
- prefix: a random number of first steps, all pitches (continuation).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

MASK_KINDS = ("nothing", "top_voice", "bottom_voice", "time_span", "prefix")


def top_voice_mask(roll: jax.Array) -> jax.Array:
    """bool [..., time, pitch]: per step, the highest sounding cell of roll [..., time, pitch] and all above it."""
    sounding = roll > 0.5
    columns = jnp.arange(roll.shape[-1])
    highest = jnp.max(jnp.where(sounding, columns, -1), axis=-1, keepdims=True)  # [..., time, 1]; -1: a rest
    return (highest >= 0) & (columns >= highest)


def bottom_voice_mask(roll: jax.Array) -> jax.Array:
    """bool [..., time, pitch]: per step, the lowest sounding cell of roll [..., time, pitch] and all below it."""
    return top_voice_mask(roll[..., ::-1])[..., ::-1]


def random_masks(rng: jax.Array, roll: jax.Array) -> jax.Array:
    """One mask of a uniformly drawn kind (`MASK_KINDS`) per roll [B, time, pitch] -> bool [B, time, pitch]."""
    batch, num_steps, _ = roll.shape
    kind_rng, start_rng, length_rng, prefix_rng = jax.random.split(rng, 4)
    kind = jax.random.randint(kind_rng, (batch,), 0, len(MASK_KINDS))
    steps = jnp.arange(num_steps)[None, :, None]  # [1, time, 1]
    start = jax.random.randint(start_rng, (batch, 1, 1), 0, num_steps)
    # 1 .. num_steps - start: the span stays inside the roll (else most spans would end it, a prefix task).
    length = 1 + jnp.floor(jax.random.uniform(length_rng, (batch, 1, 1)) * (num_steps - start)).astype(jnp.int32)
    outside_span = (steps < start) | (steps >= start + length)
    prefix = steps < jax.random.randint(prefix_rng, (batch, 1, 1), 1, num_steps)
    masks = jnp.stack(jnp.broadcast_arrays(  # [kinds, B, time, pitch], in MASK_KINDS order
        jnp.zeros(roll.shape, bool), top_voice_mask(roll), bottom_voice_mask(roll), outside_span, prefix))
    return masks[kind, jnp.arange(batch)]
