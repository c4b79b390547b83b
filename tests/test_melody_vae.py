"""The melody VAE network and its Task: shapes, batching, sampling, schedules and loss terms.

Inputs are real 2-bar chunks from the music21 folk corpus; the network is a tiny untrained one (the
trained behaviour is covered by tests/test_melody_vae_training.py).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.data import chunks, corpus, melody
from smdiff.models.melody_vae import MelodyVAE, MelodyVAEConfig
from smdiff.tasks.melody_vae import MelodyVAETask, gaussian_kl, kl_beta, sampling_probability

TINY = MelodyVAEConfig(z_size=8, encoder_size=16, decoder_sizes=(16, 24, 16))


@functools.lru_cache(maxsize=None)
def real_chunks(num_tunes: int = 30) -> np.ndarray:
    """Non-rest 2-bar chunks (int32 [n, 32]) of the first Essen folk tunes shipped with music21."""
    found = []
    for parsed in corpus.parse_tunes(corpus.corpus_tunes(max_tunes=num_tunes), workers=1):
        if parsed.note_sequence is None:
            continue
        for events in melody.extract_melodies(parsed.note_sequence, melody.MelodyRules(stream_bars=True)).melodies:
            song_chunks = chunks.melody_chunks(events)
            found.append(song_chunks[~chunks.all_rest(song_chunks)])
    return np.concatenate(found)


@pytest.fixture(scope="module")
def model_and_params():
    model = MelodyVAE(TINY)
    events = jnp.asarray(real_chunks()[:4])
    params = jax.jit(model.init)(jax.random.PRNGKey(0), events, jax.random.PRNGKey(1))["params"]
    return model, params


def jitted(model, method):
    """model.apply for one method, compiled (an eager scan re-traces every step)."""
    return jax.jit(functools.partial(model.apply, method=method), static_argnums=(3,) if method == "decode" else ())


def test_real_chunks_are_melodies():
    events = real_chunks()
    assert events.shape[1] == 32 and len(events) > 200
    assert events.min() >= 0 and events.max() < melody.NUM_CLASSES
    assert len(np.unique(events)) > 10


def test_encode_and_decode_shapes(model_and_params):
    model, params = model_and_params
    events = jnp.asarray(real_chunks()[:6])
    mu, sigma = jitted(model, "encode")({"params": params}, events)
    assert mu.shape == sigma.shape == (6, TINY.z_size)
    assert bool(jnp.all(sigma > 0))
    decoded = jitted(model, "decode")({"params": params}, mu)
    assert decoded.shape == (6, 32) and decoded.dtype == jnp.int32
    logits, mu2, sigma2, z = jax.jit(model.apply)({"params": params}, events, jax.random.PRNGKey(2), 0.5)
    assert logits.shape == (6, 32, TINY.num_classes) and z.shape == (6, TINY.z_size)
    np.testing.assert_allclose(mu2, mu, rtol=1e-6)


def test_batched_encode_and_decode_equal_one_at_a_time(model_and_params):
    model, params = model_and_params
    events = jnp.asarray(real_chunks()[10:18])
    encode, decode = jitted(model, "encode"), jitted(model, "decode")
    mu, sigma = encode({"params": params}, events)
    decoded = decode({"params": params}, mu)
    for i in range(len(events)):
        mu_i, sigma_i = encode({"params": params}, events[i:i + 1])
        np.testing.assert_allclose(mu_i[0], mu[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sigma_i[0], sigma[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(decode({"params": params}, mu[i:i + 1])[0], decoded[i])


def test_sampling_temperature(model_and_params):
    model, params = model_and_params
    # Untrained logits are nearly tied; a 10^4 x output projection separates them as a trained one would.
    decisive = jax.tree_util.tree_map(lambda x: x, params)
    decisive["decoder"]["output_projection"]["kernel"] = 1e4 * params["decoder"]["output_projection"]["kernel"]
    decode = jitted(model, "decode")
    z = jax.random.normal(jax.random.PRNGKey(3), (16, TINY.z_size))
    argmax = decode({"params": decisive}, z)
    near_argmax = decode({"params": decisive}, z, jax.random.PRNGKey(4), 1e-3)
    np.testing.assert_array_equal(near_argmax, argmax)
    hot = decode({"params": params}, z, jax.random.PRNGKey(4), 5.0)
    assert (np.asarray(hot) != np.asarray(decode({"params": params}, z))).mean() > 0.5
    np.testing.assert_array_equal(hot, decode({"params": params}, z, jax.random.PRNGKey(4), 5.0))  # same key


def test_bad_inputs_are_clear_errors(model_and_params):
    model, params = model_and_params
    with pytest.raises(ValueError, match="needs an rng"):
        model.apply({"params": params}, jnp.zeros((2, TINY.z_size)), None, 1.0, method=model.decode)
    with pytest.raises(ValueError, match="expected events"):
        model.apply({"params": params}, jnp.zeros((2, 16), jnp.int32), method=model.encode)
    with pytest.raises(ValueError, match="integer class ids"):
        model.apply({"params": params}, jnp.zeros((2, 32), jnp.float32), method=model.encode)
    with pytest.raises(ValueError, match="decode expects z"):
        model.apply({"params": params}, jnp.zeros((2, TINY.z_size + 1)), method=model.decode)
    with pytest.raises(ValueError, match="decoder layer"):
        MelodyVAEConfig(decoder_sizes=())


def test_scheduled_sampling_changes_only_later_inputs(model_and_params):
    model, params = model_and_params
    events = jnp.asarray(real_chunks()[:8])
    rng = jax.random.PRNGKey(5)
    forward = jax.jit(model.apply)
    teacher, *_ = forward({"params": params}, events, rng, 0.0)
    sampled, *_ = forward({"params": params}, events, rng, 1.0)
    np.testing.assert_allclose(sampled[:, 0], teacher[:, 0], rtol=1e-6)  # step 0 sees no previous event
    assert not np.allclose(sampled[:, 1:], teacher[:, 1:])


def test_schedules_closed_form():
    assert float(kl_beta(0, 0.5, 0.99999)) == 0.0
    np.testing.assert_allclose(kl_beta(100_000, 0.5, 0.99999), 0.5 * (1 - 0.99999 ** 100_000), rtol=1e-5)
    np.testing.assert_allclose(sampling_probability(0, "inverse_sigmoid", 1000.0), 1 - 1000 / 1001, rtol=1e-5)
    np.testing.assert_allclose(sampling_probability(1000 * np.log(1000), "inverse_sigmoid", 1000.0), 0.5, rtol=1e-5)
    assert float(sampling_probability(1e7, "inverse_sigmoid", 1000.0)) == 1.0  # exp overflow is harmless
    np.testing.assert_allclose(sampling_probability(10, "exponential", 0.9), 1 - 0.9 ** 10, rtol=1e-5)
    assert float(sampling_probability(123, "constant", 0.25)) == 0.25
    with pytest.raises(ValueError, match="unknown sampling_schedule"):
        sampling_probability(0, "linear", 0.1)
    with pytest.raises(ValueError, match="sampling_rate >= 1"):
        MelodyVAETask(MelodyVAE(TINY), sampling_rate=0.5)


def test_gaussian_kl_closed_form():
    np.testing.assert_allclose(gaussian_kl(jnp.zeros(3), jnp.ones(3)), 0.0, atol=1e-7)
    np.testing.assert_allclose(gaussian_kl(jnp.array([1.0]), jnp.array([1.0])), [0.5], rtol=1e-6)
    np.testing.assert_allclose(gaussian_kl(jnp.array([0.0]), jnp.array([2.0])), [1.5 - np.log(2.0)], rtol=1e-6)


def test_task_loss_is_reconstruction_plus_annealed_kl_above_free_bits():
    model = MelodyVAE(TINY)
    batch = {"events": jnp.asarray(real_chunks()[:16])}
    task = MelodyVAETask(model, free_bits=0.0, max_beta=0.5, beta_rate=0.99)
    params = jax.jit(task.init)(jax.random.PRNGKey(0), batch)
    rng, step = jax.random.PRNGKey(1), jnp.int32(50)
    loss, metrics = jax.jit(task.loss)(params, batch, rng, step)
    beta = 0.5 * (1 - 0.99 ** 50)
    np.testing.assert_allclose(metrics["kl_beta"], beta, rtol=1e-5)
    kl_nats = metrics["kl_bits"] * np.log(2.0)
    np.testing.assert_allclose(loss, metrics["reconstruction_loss"] + beta * kl_nats, rtol=1e-5)
    # Free bits above every chunk's KL leave only the reconstruction term.
    generous = MelodyVAETask(model, free_bits=1e4, max_beta=0.5, beta_rate=0.99)
    free_loss, free_metrics = jax.jit(generous.loss)(params, batch, rng, step)
    np.testing.assert_allclose(free_loss, free_metrics["reconstruction_loss"], rtol=1e-6)
    # An untrained decoder is near uniform over the 90 classes: 32 steps * ln 90 nats per chunk.
    np.testing.assert_allclose(metrics["reconstruction_loss"], 32 * np.log(90), rtol=0.1)


def test_task_evaluate_metrics():
    model = MelodyVAE(TINY)
    batch = {"events": jnp.asarray(real_chunks()[:16])}
    task = MelodyVAETask(model)
    params = jax.jit(task.init)(jax.random.PRNGKey(0), batch)
    metrics = jax.jit(task.evaluate)(params, batch, jax.random.PRNGKey(1))
    assert set(metrics) >= {"free_running_accuracy", "teacher_forced_accuracy", "chunk_accuracy",
                            "kl_bits_per_dim", "reconstruction_loss"}
    assert all(m.shape == () for m in metrics.values())
    np.testing.assert_allclose(metrics["kl_bits_per_dim"] * TINY.z_size, metrics["kl_bits"], rtol=1e-5)
    # The headline: argmax decoding from mu with no teacher forcing, scored per step and per whole chunk.
    mu, _ = model.apply({"params": params}, batch["events"], method=model.encode)
    decoded = np.asarray(model.apply({"params": params}, mu, method=model.decode))  # [16, 32]
    events = np.asarray(batch["events"])
    assert float(metrics["free_running_accuracy"]) == pytest.approx(float((decoded == events).mean()), abs=1e-6)
    assert float(metrics["chunk_accuracy"]) == pytest.approx(float((decoded == events).all(-1).mean()), abs=1e-6)
    # Untrained, it is near chance (a metric comparing the decoding with itself would give 1).
    assert float(metrics["free_running_accuracy"]) < 0.2
