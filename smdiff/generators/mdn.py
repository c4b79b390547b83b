"""Autoregressive sampling from a trained TransformerMDN, behind the generator interface of `base.py`.

One jitted `lax.scan` over the k positions; each step runs the network on one position with the keys and
values of the earlier positions cached (not k full forward passes), draws the next latent from the
mixture at a temperature, and feeds exactly that latent to the next step, so the returned sequence is the
one every step was conditioned on (the released sampler returned re-sampled earlier positions: a bug).
Continuation: the first positions are given and teacher-forced instead of drawn. Infilling (a gap followed
by given latents) is impossible left to right and raises `UnsupportedTaskError`.

Randomness is per sample (a key per sequence, folded with the position), so a sample does not depend on
the batch it is drawn in or on how the batch is sharded over devices.
"""
import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from smdiff.generators.base import UnsupportedTaskError, check_infill_inputs, keep_known
from smdiff.models import gaussian_mixture
from smdiff.models.transformer_mdn import TransformerMDN
from smdiff.training import sharding


def _generate(decoder: TransformerMDN, temperature: float, params, rng: jax.Array, num_known: jax.Array,
              known: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(x [n, k, d], log p(x_i | x_<i) [n, k]); positions < num_known are copied from known [n, k, d].

    Sample i draws with key i of `jax.random.split(rng, n)`. The log-probabilities are under the model's
    own density (temperature 1), whatever `temperature` draws.
    """
    n, k, d = known.shape
    sample_keys = jax.random.split(rng, n)
    cache_shapes = jax.eval_shape(decoder.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct(known.shape, known.dtype))
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes["cache"])

    def step(carry, position):
        cache, inputs = carry  # inputs [n, 1, d]: the start token, then the latent chosen one step earlier
        mixture, mutated = decoder.apply({"params": params, "cache": cache}, inputs, mutable=["cache"])
        mixture = jax.tree.map(lambda a: a[:, 0], mixture)  # [n, M], [n, M, d], [n, M, d]
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(sample_keys, position)
        drawn = jax.vmap(functools.partial(gaussian_mixture.sample, temperature=temperature))(keys, mixture)
        chosen = jnp.where(position < num_known, known[:, position], drawn)  # [n, d]
        return (mutated["cache"], chosen[:, None]), (chosen, gaussian_mixture.log_prob(mixture, chosen))

    start = jnp.zeros((n, 1, d), known.dtype)
    _, (latents, log_probs) = jax.lax.scan(step, (cache, start), jnp.arange(k))
    return latents.transpose(1, 0, 2), log_probs.T


class MDNGenerator:
    """Samples [n, k, d] sequences of scaled latents from a TransformerMDN's `params`.

    window_chunks: k (default: the model config's; required when that is None).
    temperature: component logits / T and variances * T (1 = the model's density, the paper's setting).
    mesh: sample over its `data` axis (default: this process's devices; see `smdiff.training.sharding.ShardedApply`).
    """

    def __init__(self, model: TransformerMDN, params, window_chunks: int | None = None, temperature: float = 1.0,
                 mesh: Mesh | None = None):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.window_chunks = window_chunks or model.config.window_chunks
        if self.window_chunks is None:
            raise ValueError("the model config leaves window_chunks open: pass the window_chunks to sample")
        if model.config.window_chunks is not None and self.window_chunks > model.config.window_chunks:
            raise ValueError(f"the model takes at most {model.config.window_chunks} latents, asked for {self.window_chunks}")
        self.latent_dim = params["input_projection"]["kernel"].shape[0]  # d, the trained model's input width
        self.temperature = temperature
        self._generate = sharding.ShardedApply(functools.partial(_generate, model.clone(decode=True), temperature),
                                               num_replicated=3, mesh=mesh, rng_index=1)
        self._params = self._generate.replicate(params)

    def generate(self, rng: jax.Array, known: jax.Array, num_known: int) -> tuple[jax.Array, jax.Array]:
        """(x [n, k, d], log p(x_i | x_<i) [n, k] in nats) continuing the first `num_known` latents of known [n, k, d]."""
        if not 0 <= num_known <= self.window_chunks:
            raise ValueError(f"num_known must lie in [0, {self.window_chunks}], got {num_known}")
        known = jnp.asarray(known, jnp.float32)
        if known.ndim != 3 or known.shape[1:] != (self.window_chunks, self.latent_dim):
            raise ValueError(f"known must have shape [n, {self.window_chunks}, {self.latent_dim}], got {known.shape}")
        return self._generate(self._params, rng, jnp.int32(num_known), known)

    def sample(self, rng: jax.Array, num_samples: int) -> jax.Array:
        """num_samples fresh sequences, x [num_samples, k, d]."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        known = jnp.zeros((num_samples, self.window_chunks, self.latent_dim), jnp.float32)
        return self.generate(rng, known, 0)[0]

    def infill(self, rng: jax.Array, known: jax.Array, known_mask: jax.Array) -> jax.Array:
        """Continuation only: `known_mask` [k] must be a prefix (True, ..., True, False, ..., False)."""
        mask = check_infill_inputs(known, known_mask, self.window_chunks, self.latent_dim)
        num_known = int(mask.sum())
        if not mask[:num_known].all():
            raise UnsupportedTaskError(
                "the TransformerMDN generates left to right and can only continue a given prefix; "
                f"known_mask {mask.astype(int).tolist()} has a gap before given latents (use the diffusion, "
                "interpolation or prior generator to infill)")
        return keep_known(self.generate(rng, known, num_known)[0], known, mask)
