"""The U-Net of Atassi 2023 that predicts a clean piano roll x0 from a noisy one x_t and the step t.

As the paper describes it (the widely used DDPM U-Net layout): a 7x7 input convolution to `base_width`
channels; per level, two ResNet blocks (`blocks_per_level`) (GroupNorm, SiLU, 3x3 convs, the time embedding as a scale and
shift) and a residual linear-attention layer, then a 2x downsampling; in the middle a ResNet block,
full self-attention and another ResNet block; the mirror-image up path with skip connections; a last
ResNet block and a 1x1 convolution to one logit per cell. Time enters as a sinusoidal embedding
followed by an MLP. Paper: base width 48, width multipliers (1, 2, 4, 4).

The roll [batch, time, pitch] is an image with one channel, a voice-channel roll [batch, time, pitch, C] one
with C (one per voice): the input and output channels follow the data; time and pitch must divide by
2 ** (len(width_multipliers) - 1). A `conditioned` U-Net also reads the known cells and their mask as more
input channels, two per roll channel (the known roll where the mask is set, 0 elsewhere; the mask), so one model
can be trained on random conditioning masks (`smdiff.diffusion.conditioning`) and serve every task.

`dtype` (config) is the compute dtype of the convolutions and dense layers ('bfloat16' for mixed
precision); parameters, group norms, the attention softmaxes, the residual stream and the output logits
(the loss's input) stay float32.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    base_width: int = 48
    width_multipliers: tuple[int, ...] = (1, 2, 4, 4)
    blocks_per_level: int = 2  # ResNet blocks per level on the way down (and up)
    attention_heads: int = 4
    attention_head_width: int = 32
    norm_groups: int = 8
    num_steps: int = 100  # T: the time embedding's input range is 0..T
    dtype: str = "float32"  # compute dtype of convolutions and dense layers: 'float32' or 'bfloat16'
    conditioned: bool = False  # inputs also the known cells and their mask (two more channels)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.width_multipliers) - 1)


def sinusoidal_embedding(t: jax.Array, width: int) -> jax.Array:
    """Transformer-style embedding of (integer or real) steps t [B] -> [B, width]."""
    half = width // 2
    frequencies = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / (half - 1))
    angles = jnp.asarray(t, jnp.float32)[:, None] * frequencies[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding as (scale, shift) after the second norm."""

    width: int
    norm_groups: int
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, time_embedding: jax.Array) -> jax.Array:  # x [B, H, W, C]
        h = nn.Conv(self.width, (3, 3), dtype=self.dtype)(x)
        h = nn.silu(nn.GroupNorm(num_groups=self.norm_groups, dtype=jnp.float32)(h))
        scale_shift = nn.Dense(2 * self.width, dtype=self.dtype)(nn.silu(time_embedding))[:, None, None, :]
        scale, shift = jnp.split(scale_shift, 2, axis=-1)  # each [B, 1, 1, C]
        h = nn.GroupNorm(num_groups=self.norm_groups, dtype=jnp.float32)(nn.Conv(self.width, (3, 3), dtype=self.dtype)(h))
        h = nn.silu(h * (1.0 + scale) + shift)
        residual = x if x.shape[-1] == self.width else nn.Conv(self.width, (1, 1), dtype=self.dtype)(x)
        return h + residual


class LinearAttention(nn.Module):
    """Pre-normed residual linear attention (softmax over features for q, over positions for k):
    cost linear in the number of cells, so it runs at every level."""

    heads: int
    head_width: int
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, C]
        batch, height, width, channels = x.shape
        h = nn.GroupNorm(num_groups=1, dtype=jnp.float32)(x).reshape(batch, height * width, channels)
        qkv = nn.Dense(3 * self.heads * self.head_width, use_bias=False, dtype=self.dtype)(h)
        q, k, v = jnp.split(qkv.reshape(batch, -1, 3 * self.heads, self.head_width), 3, axis=2)  # [B, N, h, d]
        q = jax.nn.softmax(q.astype(jnp.float32), axis=-1).astype(self.dtype) * self.head_width**-0.5
        k = jax.nn.softmax(k.astype(jnp.float32), axis=1).astype(self.dtype)
        context = jnp.einsum("bnhd,bnhe->bhde", k, v)  # [B, h, d, d]
        out = jnp.einsum("bhde,bnhd->bnhe", context, q).reshape(batch, height * width, -1)
        out = nn.GroupNorm(num_groups=1, dtype=jnp.float32)(nn.Dense(channels, dtype=self.dtype)(out))
        return x + out.reshape(x.shape)


class FullAttention(nn.Module):
    """Pre-normed residual multi-head self-attention over all cells (used at the lowest resolution)."""

    heads: int
    head_width: int
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, C]
        batch, height, width, channels = x.shape
        h = nn.GroupNorm(num_groups=1, dtype=jnp.float32)(x).reshape(batch, height * width, channels)
        out = nn.MultiHeadDotProductAttention(
            num_heads=self.heads, qkv_features=self.heads * self.head_width, out_features=channels,
            dtype=self.dtype, force_fp32_for_softmax=True,
        )(h, h)
        return x + out.reshape(x.shape)


class UNet(nn.Module):
    """(x_t [B, time, pitch(, C)] in {0, 1}, t [B][, known, mask]) -> x0 logits of x_t's shape.

    known (float {0, 1}) and mask (bool, True = given), both of x_t's shape: required by a `conditioned` model
    (an all-False mask asks for an unconditional sample), refused by the others.
    """

    config: UNetConfig

    @nn.compact
    def __call__(self, x_t: jax.Array, t: jax.Array, known: jax.Array | None = None,
                 mask: jax.Array | None = None) -> jax.Array:
        config = self.config
        factor = config.downsampling_factor
        if x_t.ndim not in (3, 4) or x_t.shape[1] % factor or x_t.shape[2] % factor:
            raise ValueError(f"UNet needs rolls [batch, time, pitch] or [batch, time, pitch, channels] with time and "
                             f"pitch divisible by {factor}, got {x_t.shape}")
        if config.conditioned != (known is not None and mask is not None):
            raise ValueError("a conditioned UNet needs `known` and `mask`, an unconditioned one takes neither"
                             f" (conditioned={config.conditioned})")
        block = lambda width: ResnetBlock(width, config.norm_groups, config.dtype)  # noqa: E731
        linear_attention = lambda: LinearAttention(config.attention_heads, config.attention_head_width,  # noqa: E731
                                                   config.dtype)
        conv = functools.partial(nn.Conv, dtype=config.dtype)
        widths = [config.base_width * m for m in config.width_multipliers]

        embedding_width = 4 * config.base_width
        time_embedding = sinusoidal_embedding(t, config.base_width)
        time_embedding = nn.Dense(embedding_width, dtype=config.dtype)(
            nn.gelu(nn.Dense(embedding_width, dtype=config.dtype)(time_embedding)))

        as_image = (lambda roll: roll[..., None]) if x_t.ndim == 3 else (lambda roll: roll)  # noqa: E731
        x = 2.0 * as_image(x_t).astype(jnp.float32) - 1.0  # [B, T, P, C] in {-1, 1}
        roll_channels = x.shape[-1]
        if config.conditioned:  # [B, T, P, 3C]: x_t, the known cells in {-1, 1} (0 where not given), the mask
            given = as_image(mask).astype(jnp.float32)
            x = jnp.concatenate([x, given * (2.0 * as_image(known).astype(jnp.float32) - 1.0), given], axis=-1)
        x = conv(config.base_width, (7, 7))(x)
        input_features = x
        skips = []
        width_in = config.base_width
        for level, width_out in enumerate(widths):
            for _ in range(config.blocks_per_level):
                x = block(width_in)(x, time_embedding)
                skips.append(x)
            x = linear_attention()(x)
            if level < len(widths) - 1:  # 2x downsampling of time and pitch
                x = conv(width_out, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))(x)
            else:
                x = conv(width_out, (3, 3))(x)
            width_in = width_out

        x = block(widths[-1])(x, time_embedding)
        x = FullAttention(config.attention_heads, config.attention_head_width, config.dtype)(x)
        x = block(widths[-1])(x, time_embedding)

        widths_in = [config.base_width] + widths[:-1]
        for level in reversed(range(len(widths))):
            for _ in range(config.blocks_per_level):
                x = block(widths[level])(jnp.concatenate([x, skips.pop()], axis=-1), time_embedding)
            x = linear_attention()(x)
            if level > 0:  # nearest-neighbour 2x upsampling, then a conv
                batch, height, width, channels = x.shape
                x = jax.image.resize(x, (batch, 2 * height, 2 * width, channels), "nearest")
            x = conv(widths_in[level], (3, 3))(x)

        x = block(config.base_width)(jnp.concatenate([x, input_features], axis=-1), time_embedding)
        logits = nn.Conv(roll_channels, (1, 1), dtype=jnp.float32)(x)  # [B, T, P, C]
        return logits[..., 0] if x_t.ndim == 3 else logits
