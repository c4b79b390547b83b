"""TransformerDDPM: the epsilon-prediction network of Mittal et al. 2021 (REFERENCE.md section 1).

x_t [B, k, d] -> Dense(d_model) + eq. 8 position encoding -> pre-LN transformer encoder -> LN ->
Dense(res_width) -> K noise-conditioned residual blocks (FiLM on the noise level) -> LN -> Dense(d) = eps.
The noise level sqrt(alpha_bar) enters only the residual blocks, not the attention stack.

`dtype` (config) is the compute dtype of the matmuls ('bfloat16' for mixed precision); parameters, layer
norms, the sinusoidal encodings, the projection into the residual blocks' stream (so that it stays
float32) and the output layer (eps, which the diffusion arithmetic uses) stay float32.
"""
import dataclasses

import jax.numpy as jnp
from flax import linen as nn

from smdiff.models.transformer import TransformerEncoder, position_encoding, sinusoidal_encoding


@dataclasses.dataclass(frozen=True)
class TransformerDDPMConfig:
    """Defaults are the paper's (25.58M parameters with data_dim=42)."""

    data_dim: int | None = 42  # active latent dims per position; None = the input's last dim
    d_model: int = 128
    num_layers: int = 6
    num_heads: int = 8
    mlp_dim: int = 2048
    num_res_blocks: int = 2  # K
    res_width: int = 2048
    film_hidden: int = 512
    noise_encoding_dim: int = 128
    noise_frequency_scale: float = 5000.0  # the noise level lies in [0, 1]: scale its frequencies up
    dropout: float = 0.0
    dtype: str = "float32"  # compute dtype of the hidden matmuls: 'float32' or 'bfloat16'


class FiLMGenerator(nn.Module):
    """Noise level [B] -> (scale, shift), each [B, 1, width].

    encoding -> Dense(hidden) -> swish -> Dense(hidden) -> two Dense(width) heads: the reference has no
    activation between the second hidden layer and the heads.
    """

    width: int
    hidden: int
    encoding_dim: int
    frequency_scale: float
    dtype: str = "float32"

    @nn.compact
    def __call__(self, noise_level: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        h = sinusoidal_encoding(noise_level, self.encoding_dim, self.frequency_scale)  # [B, encoding_dim]
        h = nn.swish(nn.Dense(self.hidden, dtype=self.dtype, name="hidden_0")(h))
        h = nn.Dense(self.hidden, dtype=self.dtype, name="hidden_1")(h)
        scale = nn.Dense(self.width, dtype=self.dtype, name="scale")(h)[:, None, :]
        shift = nn.Dense(self.width, dtype=self.dtype, name="shift")(h)[:, None, :]
        return scale, shift


class NoiseConditionedResBlock(nn.Module):
    """h + Dense(swish(FiLM(LN(Dense(swish(FiLM(LN(h)))))))) with its own FiLM generator."""

    config: TransformerDDPMConfig

    @nn.compact
    def __call__(self, h: jnp.ndarray, noise_level: jnp.ndarray) -> jnp.ndarray:
        # h: [B, k, res_width]; noise_level: [B].
        c = self.config
        scale, shift = FiLMGenerator(
            c.res_width, c.film_hidden, c.noise_encoding_dim, c.noise_frequency_scale, c.dtype, name="film"
        )(noise_level)
        x = h
        for i in range(2):
            x = scale * nn.LayerNorm(dtype=jnp.float32, name=f"norm_{i}")(x) + shift
            x = nn.Dense(c.res_width, dtype=c.dtype, name=f"dense_{i}")(nn.swish(x))
        return h + x


class TransformerDDPM(nn.Module):
    """eps_theta(x_t [B, k, data_dim], noise_level [B]) -> eps [B, k, data_dim]."""

    config: TransformerDDPMConfig

    @nn.compact
    def __call__(self, x_t: jnp.ndarray, noise_level: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        c = self.config
        if x_t.ndim != 3 or c.data_dim not in (None, x_t.shape[-1]):
            raise ValueError(f"TransformerDDPM expects [batch, k, {c.data_dim or 'd'}] inputs, got {x_t.shape}")
        if noise_level.shape != x_t.shape[:1]:
            raise ValueError(f"noise_level must be [batch] = {x_t.shape[:1]}, got {noise_level.shape}")
        h = nn.Dense(c.d_model, dtype=c.dtype, name="input_projection")(x_t)
        h = h + position_encoding(x_t.shape[1], c.d_model)  # [B, k, d_model]
        h = TransformerEncoder(
            num_layers=c.num_layers,
            num_heads=c.num_heads,
            d_model=c.d_model,
            mlp_dim=c.mlp_dim,
            dropout=c.dropout,
            causal=False,
            dtype=c.dtype,
            name="encoder",
        )(h, deterministic=deterministic)
        # float32: the residual blocks' stream stays float32 (their own matmuls use c.dtype).
        h = nn.Dense(c.res_width, dtype=jnp.float32, name="to_res_width")(
            nn.LayerNorm(dtype=jnp.float32, name="encoder_norm")(h))
        for i in range(c.num_res_blocks):
            h = NoiseConditionedResBlock(c, name=f"res_block_{i}")(h, noise_level)
        h = nn.LayerNorm(dtype=jnp.float32, name="output_norm")(h)
        return nn.Dense(x_t.shape[-1], dtype=jnp.float32, name="output")(h)
