"""Random conditioning masks for training one binomial-diffusion model that serves every piano-roll task.

A mask is bool [B, time, pitch], True = the cell is given (known), False = the model generates it; for
voice-channel rolls [B, time, pitch, V] (one channel per voice, highest voice first) it has their shape. Each
training example draws one kind (`MASK_KINDS`, uniformly):
- nothing: an unconditional sample;
- top_voice: the highest sounding note at every step and every cell above it (harmonizing a melody; the
  cells `generators.pianoroll.melody_mask` fixes, read off the roll's own top voice); with voice channels, the
  whole first channel (the soprano);
- bottom_voice: the lowest sounding note and every cell below it (a given bass line); with voice channels, the
  whole last channel (the bass);
- time_span: every step outside a random span [start, start + length) inside the roll, all pitches (and
  channels) (infilling);
- prefix: a random number of first steps, all pitches (and channels) (continuation).
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


def voice_channel_mask(shape: tuple[int, ...], channel: int) -> jax.Array:
    """bool of a voice-channel roll's shape [..., time, pitch, V]: every cell of voice `channel` (negative: from
    the last) given, the other voices generated."""
    return jnp.broadcast_to(jnp.arange(shape[-1]) == channel % shape[-1], shape)


def random_masks(rng: jax.Array, roll: jax.Array) -> jax.Array:
    """One mask of a uniformly drawn kind (`MASK_KINDS`) per roll [B, time, pitch] (or voice-channel roll
    [B, time, pitch, V]) -> bool of the roll's shape."""
    batch, num_steps = roll.shape[:2]
    kind_rng, start_rng, length_rng, prefix_rng = jax.random.split(rng, 4)
    kind = jax.random.randint(kind_rng, (batch,), 0, len(MASK_KINDS))
    per_step = (batch, 1) + (1,) * (roll.ndim - 2)  # [B, 1, 1(, 1)]
    steps = jnp.arange(num_steps).reshape((1, num_steps) + (1,) * (roll.ndim - 2))  # [1, time, 1(, 1)]
    start = jax.random.randint(start_rng, per_step, 0, num_steps)
    # 1 .. num_steps - start: the span stays inside the roll (else most spans would end it, a prefix task).
    length = 1 + jnp.floor(jax.random.uniform(length_rng, per_step) * (num_steps - start)).astype(jnp.int32)
    outside_span = (steps < start) | (steps >= start + length)
    prefix = steps < jax.random.randint(prefix_rng, per_step, 1, num_steps)
    if roll.ndim == 4:  # voice channels: the soprano's or the bass's channel given whole
        top, bottom = voice_channel_mask(roll.shape, 0), voice_channel_mask(roll.shape, -1)
    else:
        top, bottom = top_voice_mask(roll), bottom_voice_mask(roll)
    masks = jnp.stack(jnp.broadcast_arrays(  # [kinds, B, time, pitch(, V)], in MASK_KINDS order
        jnp.zeros(roll.shape, bool), top, bottom, outside_span, prefix))
    return masks[kind, jnp.arange(batch)]
