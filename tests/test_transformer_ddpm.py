"""The paper's denoiser: parameter count, shapes, eq. 8 encodings, noise conditioning; the encoder stack."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.models.params import count_params
from smdiff.models.transformer import TransformerEncoder, position_encoding, sinusoidal_encoding
from smdiff.models.transformer_ddpm import FiLMGenerator, TransformerDDPM, TransformerDDPMConfig

TINY = TransformerDDPMConfig(
    data_dim=6, d_model=16, num_layers=2, num_heads=2, mlp_dim=32, res_width=24, film_hidden=8,
    noise_encoding_dim=16,
)


def count_parameters(config: TransformerDDPMConfig, k: int = 32) -> int:
    model = TransformerDDPM(config)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, k, config.data_dim)), jnp.zeros((1,)))
    return count_params(shapes)


def test_paper_configuration_has_25_58m_parameters():
    # Dense(42->128) 5,504 + 6 blocks x 593,024 + LN+Dense(128->2048) 264,448
    # + 2 res blocks x (2 LN(2048) + 2 Dense(2048^2) + FiLM 128->512->512->2x2048) 10,830,848
    # + LN(2048) + Dense(2048->42) 90,154 = 25,579,946.
    assert count_parameters(TransformerDDPMConfig()) == 25_579_946


def test_parameter_count_does_not_depend_on_window_chunks():
    assert count_parameters(TINY, k=8) == count_parameters(TINY, k=32)


def test_eq8_encoding_closed_form():
    encoding = np.asarray(position_encoding(32, 128))  # [32, 128]
    j = np.arange(32)[:, None]
    omega = 10.0 ** (-4.0 * np.arange(64) / 63) * j
    np.testing.assert_allclose(encoding, np.concatenate([np.sin(omega), np.cos(omega)], axis=1), atol=2e-5)
    # Noise levels: the same formula with every frequency scaled by 5000.
    level = np.array([0.25, 0.9])
    noise = np.asarray(sinusoidal_encoding(jnp.asarray(level), 128, frequency_scale=5000.0))
    omega = 5000.0 * 10.0 ** (-4.0 * np.arange(64) / 63) * level[:, None]
    np.testing.assert_allclose(noise, np.concatenate([np.sin(omega), np.cos(omega)], axis=1), atol=2e-3)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(jnp.zeros(2), 7)


@pytest.fixture(scope="module")
def tiny_model():
    model = TransformerDDPM(TINY)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 10, 6))
    params = model.init(jax.random.PRNGKey(1), x, jnp.ones((3,)))["params"]
    return model, params, x


def test_denoiser_shapes_and_noise_conditioning(tiny_model):
    model, params, x = tiny_model
    low = model.apply({"params": params}, x, jnp.full((3,), 0.1))
    high = model.apply({"params": params}, x, jnp.full((3,), 0.9))
    assert low.shape == x.shape and low.dtype == jnp.float32
    assert not np.allclose(low, high)
    # The noise level enters through each residual block's own FiLM generator.
    assert {"film", "norm_0", "dense_0", "norm_1", "dense_1"} == set(params["res_block_1"])


def test_film_generator_layout_is_dense_swish_dense_then_heads():
    """The reference: encoding -> Dense 512 -> swish -> Dense 512 -> scale/shift heads. A swish before the
    heads has the same parameters, so only the computed values can tell."""
    film = FiLMGenerator(width=6, hidden=5, encoding_dim=8, frequency_scale=5000.0)
    level = jnp.array([0.05, 0.4, 0.97])
    params = film.init(jax.random.PRNGKey(8), level)["params"]
    assert set(params) == {"hidden_0", "hidden_1", "scale", "shift"}
    scale, shift = film.apply({"params": params}, level)

    def dense(name, x):
        return x @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"], np.float64)

    def swish(x):
        return x / (1.0 + np.exp(-x))

    h = np.asarray(sinusoidal_encoding(level, 8, frequency_scale=5000.0), np.float64)
    h = dense("hidden_1", swish(dense("hidden_0", h)))  # no activation after the second hidden layer
    assert scale.shape == shift.shape == (3, 1, 6)
    np.testing.assert_allclose(scale[:, 0], dense("scale", h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shift[:, 0], dense("shift", h), rtol=1e-5, atol=1e-6)


def test_denoiser_sees_position_and_is_not_causal(tiny_model):
    model, params, x = tiny_model
    level = jnp.full((3,), 0.5)
    out = model.apply({"params": params}, x, level)
    # Changing the last latent changes the prediction at the first one (bidirectional attention).
    changed = model.apply({"params": params}, x.at[:, -1].add(1.0), level)
    assert not np.allclose(out[:, 0], changed[:, 0])
    # The same latent at two positions gets different predictions (position encoding).
    same = jnp.broadcast_to(x[:, :1], x.shape)
    out_same = model.apply({"params": params}, same, level)
    assert not np.allclose(out_same[:, 0], out_same[:, 1])


def test_denoiser_rejects_bad_shapes(tiny_model):
    model, params, x = tiny_model
    with pytest.raises(ValueError, match="inputs"):
        model.apply({"params": params}, x[..., :5], jnp.ones((3,)))
    with pytest.raises(ValueError, match="noise_level"):
        model.apply({"params": params}, x, jnp.ones((2,)))


def test_causal_encoder_ignores_the_future():
    encoder = TransformerEncoder(num_layers=2, num_heads=2, d_model=8, mlp_dim=16, causal=True)
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 6, 8))
    params = encoder.init(jax.random.PRNGKey(3), x)
    out = encoder.apply(params, x)
    changed = encoder.apply(params, x.at[:, 4:].set(0.0))
    np.testing.assert_allclose(out[:, :4], changed[:, :4], atol=1e-6)
    assert not np.allclose(out[:, 4:], changed[:, 4:])


def test_dropout_is_active_only_when_not_deterministic():
    config = TransformerDDPMConfig(**{**TINY.__dict__, "dropout": 0.5})
    model = TransformerDDPM(config)
    x = jax.random.normal(jax.random.PRNGKey(4), (2, 5, 6))
    params = model.init(jax.random.PRNGKey(5), x, jnp.ones((2,)))["params"]
    eval_a = model.apply({"params": params}, x, jnp.ones((2,)))
    eval_b = model.apply({"params": params}, x, jnp.ones((2,)))
    train = model.apply({"params": params}, x, jnp.ones((2,)), deterministic=False,
                        rngs={"dropout": jax.random.PRNGKey(6)})
    np.testing.assert_array_equal(eval_a, eval_b)
    assert not np.allclose(train, eval_a)


def test_open_data_dim_follows_the_latent_dataset():
    model = TransformerDDPM(TransformerDDPMConfig(**{**TINY.__dict__, "data_dim": None}))
    x = jnp.ones((2, 5, 3))
    params = model.init(jax.random.PRNGKey(7), x, jnp.ones((2,)))["params"]
    assert model.apply({"params": params}, x, jnp.ones((2,))).shape == (2, 5, 3)
