"""The pre-LayerNorm transformer encoder stack and the paper's sinusoidal encodings (Mittal et al. eq. 8).

Shared by the diffusion denoiser (`transformer_ddpm.py`, bidirectional) and the autoregressive MDN baseline
(causal). The stack has no final LayerNorm: each model applies its own before its head (REFERENCE.md 1).

Mixed precision: `dtype` is the compute dtype of the matmuls (Dense, attention projections and
products); parameters stay float32 and layer norms and the attention softmax compute in float32. The
residual stream keeps the dtype of the input (float32 from the models' input projections plus the
float32 position encodings), so bfloat16 rounding does not accumulate across blocks.
"""
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

# Eq. 8: omega_i = 10^(-4 i / (D/2 - 1)) * j, i.e. wavelengths from 2*pi up to 2*pi * 10^4.
_MAX_LOG10_WAVELENGTH = 4.0


def sinusoidal_encoding(values: jnp.ndarray, dim: int = 128, frequency_scale: float = 1.0) -> jnp.ndarray:
    """Paper eq. 8: e = [sin(omega), cos(omega)], omega_i = 10^(-4 i / (dim/2 - 1)) * scale * value.

    Args:
      values: [...] positions j (0, 1, ..., k-1) or continuous noise levels sqrt(alpha_bar).
      dim: encoding width (128 in the paper), even and at least 4.
      frequency_scale: 1 for positions; 5000 for the noise level (its domain is [0, 1]).
    Returns:
      [..., dim] float32: the dim/2 sines followed by the dim/2 cosines.
    """
    if dim % 2 or dim < 4:
        raise ValueError(f"sinusoidal_encoding needs an even dim >= 4, got {dim}")
    half = dim // 2
    exponents = -_MAX_LOG10_WAVELENGTH * jnp.arange(half, dtype=jnp.float32) / (half - 1)
    frequencies = frequency_scale * jnp.power(10.0, exponents)  # [dim/2]
    omega = jnp.asarray(values, jnp.float32)[..., None] * frequencies  # [..., dim/2]
    return jnp.concatenate([jnp.sin(omega), jnp.cos(omega)], axis=-1)


def position_encoding(length: int, dim: int = 128) -> jnp.ndarray:
    """[length, dim] eq. 8 encodings of the positions 0..length-1."""
    return sinusoidal_encoding(jnp.arange(length), dim)


class EncoderBlock(nn.Module):
    """One pre-LN block: x + Attn(LN(x)), then x + Dense(GELU(Dense(LN(x)))).

    decode=True runs one position per call: Flax's attention appends its key and value to the 'cache'
    collection and attends to the cached positions only (which is the causal mask).
    """

    num_heads: int
    d_model: int
    mlp_dim: int
    dropout: float = 0.0
    decode: bool = False
    dtype: Any = jnp.float32  # compute dtype of the matmuls

    @nn.compact
    def __call__(self, x: jnp.ndarray, mask: jnp.ndarray | None, deterministic: bool) -> jnp.ndarray:
        # x: [batch, length, d_model]; mask: [batch or 1, 1, length, length] (True = may attend) or None.
        h = nn.LayerNorm(dtype=jnp.float32, name="attention_norm")(x)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            qkv_features=self.d_model,
            out_features=self.d_model,
            dropout_rate=self.dropout,
            deterministic=deterministic,
            decode=self.decode,
            dtype=self.dtype,
            force_fp32_for_softmax=True,
            name="attention",
        )(h, h, mask=mask)
        x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)

        h = nn.LayerNorm(dtype=jnp.float32, name="mlp_norm")(x)
        h = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in")(h)
        h = nn.gelu(h)
        h = nn.Dense(self.d_model, dtype=self.dtype, name="mlp_out")(h)
        return x + nn.Dropout(self.dropout)(h, deterministic=deterministic)


class TransformerEncoder(nn.Module):
    """A stack of `num_layers` pre-LN encoder blocks over [batch, length, d_model].

    `causal=True` lets position i attend only to positions <= i (the MDN baseline); otherwise every
    position sees the whole sequence (the diffusion denoiser). `decode=True` (causal only) takes one
    position [batch, 1, d_model] per call with a key/value cache, for autoregressive sampling; create the
    cache by `init` with a full-length input. Dropout is active only when `deterministic=False` (and never
    while decoding) and then needs a 'dropout' rng.
    """

    num_layers: int
    num_heads: int
    d_model: int
    mlp_dim: int
    dropout: float = 0.0
    causal: bool = False
    decode: bool = False
    dtype: Any = jnp.float32  # compute dtype of the matmuls (see the module docstring)

    @nn.compact
    def __call__(self, x: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        if x.shape[-1] != self.d_model:
            raise ValueError(f"TransformerEncoder expects [..., {self.d_model}] inputs, got {x.shape}")
        if self.decode and not self.causal:
            raise ValueError("decode=True needs causal=True: a cache only holds earlier positions")
        # [batch, 1, length, length]; a decoding block's cache is the causal mask.
        mask = nn.make_causal_mask(x[..., 0]) if self.causal and not self.decode else None
        deterministic = deterministic or self.decode  # sampling never drops units
        for i in range(self.num_layers):
            x = EncoderBlock(
                num_heads=self.num_heads,
                d_model=self.d_model,
                mlp_dim=self.mlp_dim,
                dropout=self.dropout,
                decode=self.decode,
                dtype=self.dtype,
                name=f"block_{i}",
            )(x, mask, deterministic)
        return x
