"""Mixtures of diagonal Gaussians (Bishop's mixture density output): log-density and sampling, plain jnp.

A mixture over d-dimensional vectors with M components is given by `MixtureParams`: unnormalised
component `logits` [..., M], `means` [..., M, d] and `log_scales` [..., M, d] (natural log of the
standard deviations). The leading dims [...] are any batch/sequence dims.
"""
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class MixtureParams(NamedTuple):
    logits: jax.Array  # [..., M]
    means: jax.Array  # [..., M, d]
    log_scales: jax.Array  # [..., M, d]


def log_prob(mixture: MixtureParams, x: jax.Array) -> jax.Array:
    """log p(x) in nats under the mixture; x [..., d] -> [...].

    log sum_m pi_m prod_j N(x_j; mu_mj, sigma_mj^2), computed with logsumexp over m.
    """
    standardized = (x[..., None, :] - mixture.means) * jnp.exp(-mixture.log_scales)  # [..., M, d]
    component = jnp.sum(-0.5 * jnp.square(standardized) - mixture.log_scales - _LOG_SQRT_2PI, axis=-1)  # [..., M]
    return jax.nn.logsumexp(jax.nn.log_softmax(mixture.logits, axis=-1) + component, axis=-1)


def sample(rng: jax.Array, mixture: MixtureParams, temperature: float = 1.0) -> jax.Array:
    """One draw x [..., d] per mixture.

    Temperature T (as in sketch-rnn): component logits / T and component variances * T; T = 1 samples
    the model's density, T -> 0 approaches the mean of the most likely component, which T = 0 returns.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        component = jnp.argmax(mixture.logits, axis=-1)  # [...]
    else:
        component_rng, rng = jax.random.split(rng)
        component = jax.random.categorical(component_rng, mixture.logits / temperature, axis=-1)  # [...]
    pick = component[..., None, None]
    mean = jnp.take_along_axis(mixture.means, pick, axis=-2)[..., 0, :]  # [..., d]
    if temperature == 0:
        return mean
    log_scale = jnp.take_along_axis(mixture.log_scales, pick, axis=-2)[..., 0, :]  # [..., d]
    noise = jax.random.normal(rng, mean.shape, mean.dtype)
    return mean + math.sqrt(temperature) * jnp.exp(log_scale) * noise
