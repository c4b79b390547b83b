"""TransformerMDN: the autoregressive baseline of Mittal et al. 2021 (section 4.2, REFERENCE.md section 1).

The diffusion denoiser's transformer made causal, over a sequence of k latents x [B, k, d]:
  1. the input is shifted right by one position behind a zero start token (teacher forcing);
  2. Dense(d_model) + eq. 8 position encoding, then the shared pre-LN encoder stack with a causal mask;
  3. LN -> Dense(residual_width) -> `num_residual_blocks` residual MLP blocks (the denoiser's blocks
     without FiLM: LN -> swish -> Dense -> LN -> swish -> Dense, + input);
  4. LN -> mixture density head: per position, a mixture of `num_mixtures` diagonal Gaussians over the
     d-dim latent (means and log-scales Dense(M * d), logits Dense(M)).
Output i is p(x_i | x_<i). The paper configuration has 38.05M parameters with d = 42 (a test checks it).

`dtype` (config) is the compute dtype of the hidden matmuls ('bfloat16' for mixed precision); parameters,
layer norms, the residual stream and the mixture head (whose log-densities are the loss) stay float32.

`decode=True` builds the same network (same parameters) for sampling one position per call, with the
attention keys and values of earlier positions cached in the 'cache' collection.
"""
import dataclasses
import warnings

import jax
import jax.numpy as jnp
from flax import linen as nn

from smdiff.models.gaussian_mixture import MixtureParams
from smdiff.models.transformer import TransformerEncoder, sinusoidal_encoding


_UNSET = object()  # the deprecated keyword's default (None is a meaningful k: any length)


@dataclasses.dataclass(frozen=True)
class TransformerMDNConfig:
    """Sizes of the TransformerMDN. Defaults are the paper's (L=6, H=8, K=2, 2048-wide, 100 Gaussians)."""

    latent_dim: int | None = 42  # d; None = the input's last dim (the latent dataset's)
    window_chunks: int | None = 32  # k, the longest sequence accepted; None = any (positions are sinusoidal)
    d_model: int = 128
    num_layers: int = 6
    num_heads: int = 8
    mlp_dim: int = 2048  # the encoder blocks' feed-forward width
    residual_width: int = 2048  # width of the residual MLP blocks after the encoder
    num_residual_blocks: int = 2
    num_mixtures: int = 100
    dropout: float = 0.0
    dtype: str = "float32"  # compute dtype of the hidden matmuls: 'float32' or 'bfloat16'
    # The old name of window_chunks, accepted with a warning for one release: the config.gin of workdirs
    # trained before the rename binds `TransformerMDNConfig.sequence_length`, and load_trained re-parses it.
    sequence_length: dataclasses.InitVar[int | None] = _UNSET

    def __post_init__(self, sequence_length):
        if sequence_length is not _UNSET:
            default = type(self).__dataclass_fields__["window_chunks"].default
            if self.window_chunks not in (default, sequence_length):
                raise ValueError(f"TransformerMDNConfig got window_chunks={self.window_chunks} and its old name "
                                 f"sequence_length={sequence_length}; give window_chunks only")
            warnings.warn("TransformerMDNConfig.sequence_length is deprecated and will be removed in the next "
                          "release; use window_chunks", FutureWarning, stacklevel=3)
            object.__setattr__(self, "window_chunks", sequence_length)
        sizes = (self.latent_dim or 1, self.window_chunks or 1, self.d_model, self.num_layers, self.num_heads,
                 self.mlp_dim, self.residual_width, self.num_mixtures)
        if min(sizes) < 1 or self.num_residual_blocks < 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"TransformerMDNConfig needs positive sizes and 0 <= dropout < 1: {self}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by num_heads {self.num_heads}")


class ResidualMLPBlock(nn.Module):
    """x + Dense(swish(LN(Dense(swish(LN(x)))))) over [..., width]."""

    width: int
    dtype: str = "float32"  # of the two matmuls; the norms and the residual sum stay float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.Dense(self.width, dtype=self.dtype, name="dense_0")(
            nn.swish(nn.LayerNorm(dtype=jnp.float32, name="norm_0")(x)))
        h = nn.Dense(self.width, dtype=self.dtype, name="dense_1")(
            nn.swish(nn.LayerNorm(dtype=jnp.float32, name="norm_1")(h)))
        return x + h


class MixtureDensityHead(nn.Module):
    """Per position, a mixture of `num_mixtures` diagonal Gaussians over `latent_dim` dims."""

    latent_dim: int
    num_mixtures: int

    @nn.compact
    def __call__(self, h: jax.Array) -> MixtureParams:
        # h: [..., width] -> logits [..., M], means and log_scales [..., M, d]
        components = (*h.shape[:-1], self.num_mixtures, self.latent_dim)
        means = nn.Dense(self.num_mixtures * self.latent_dim, name="means")(h).reshape(components)
        log_scales = nn.Dense(self.num_mixtures * self.latent_dim, name="log_scales")(h).reshape(components)
        logits = nn.Dense(self.num_mixtures, name="logits")(h)
        return MixtureParams(logits=logits, means=means, log_scales=log_scales)


def shift_right(x: jax.Array) -> jax.Array:
    """Decoder inputs for teacher forcing: [zero start token, x_0, ..., x_{k-2}]; x [B, k, d] -> [B, k, d]."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0)))[:, :-1]


class TransformerMDN(nn.Module):
    """The causal transformer with a mixture density head.

    decode=False: `__call__(x [B, k, d])` returns the mixtures [B, k, ...] of p(x_i | x_<i) (teacher forcing).
    decode=True: `__call__(inputs [B, 1, d])` takes the decoder input of the next position (zeros, the start
    token, at position 0; the latent chosen at position i-1 after) and returns that position's mixture
    [B, 1, ...]; the 'cache' collection (mutable) holds the position and attention keys/values. Create the
    cache by `init` with a full-length [B, k, d] input.
    """

    config: TransformerMDNConfig
    decode: bool = False

    @nn.compact
    def __call__(self, inputs: jax.Array, deterministic: bool = True) -> MixtureParams:
        c = self.config
        latent_dim = inputs.shape[-1]
        if inputs.ndim != 3 or c.latent_dim not in (None, latent_dim):
            raise ValueError(f"TransformerMDN expects [batch, k, {c.latent_dim or 'd'}] latents, got {inputs.shape}")
        if self.decode:
            cache_ready = self.has_variable("cache", "position")
            position = self.variable("cache", "position", lambda: jnp.zeros((), jnp.int32))
            if cache_ready:
                positions = position.value[None]  # [1]
                position.value = position.value + 1
            else:
                positions = jnp.arange(inputs.shape[1])
            h = inputs
        else:
            if c.window_chunks is not None and inputs.shape[1] > c.window_chunks:
                raise ValueError(f"sequences longer than {c.window_chunks} latents: {inputs.shape}")
            positions = jnp.arange(inputs.shape[1])
            h = shift_right(inputs)

        h = nn.Dense(c.d_model, dtype=c.dtype, name="input_projection")(h) + sinusoidal_encoding(positions, c.d_model)
        h = TransformerEncoder(c.num_layers, c.num_heads, c.d_model, c.mlp_dim, dropout=c.dropout, causal=True,
                               decode=self.decode, dtype=c.dtype, name="encoder")(h, deterministic=deterministic)
        h = nn.Dense(c.residual_width, dtype=jnp.float32, name="residual_projection")(
            nn.LayerNorm(dtype=jnp.float32, name="encoder_norm")(h))
        for i in range(c.num_residual_blocks):
            h = ResidualMLPBlock(c.residual_width, c.dtype, name=f"residual_block_{i}")(h)
        h = nn.LayerNorm(dtype=jnp.float32, name="head_norm")(h)
        return MixtureDensityHead(latent_dim, c.num_mixtures, name="mixture")(h)
