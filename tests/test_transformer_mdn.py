"""TransformerMDN: mixture density math, the network (paper size, causality, cached decoding), its Task and
its generator (conditioning consistency, continuation, sharding), and a short real training run on the
real folk-tune latents of tests/real_latents.py."""
import json
import pathlib

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh
from scipy import stats

from real_latents import latents_dataset, scaled_corpus_latents
from smdiff import configurables  # noqa: F401 (registers mdn.* with gin)
from smdiff.models.params import count_params
from smdiff.training import loop as train_module
from smdiff.generators.base import UnsupportedTaskError, paper_infill_mask, prefix_mask
from smdiff.generators.mdn import MDNGenerator
from smdiff.models import gaussian_mixture
from smdiff.models.transformer_mdn import TransformerMDN, TransformerMDNConfig
from smdiff.tasks.mdn import MDNTask
from smdiff.training.optimizer import OptimizerConfig

TINY = TransformerMDNConfig(latent_dim=6, window_chunks=8, d_model=32, num_layers=2, num_heads=4, mlp_dim=64,
                            residual_width=48, num_residual_blocks=2, num_mixtures=5)


@pytest.fixture(scope="module")
def scaled_latents():
    """{'train', 'validation'}: float32 [n, 4, 5] scaled posterior means of real folk-tune windows."""
    return scaled_corpus_latents()


def _param_count(config: TransformerMDNConfig) -> int:
    model = TransformerMDN(config)
    x = jnp.zeros((1, config.window_chunks, config.latent_dim))
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
    return count_params(shapes)


def test_paper_configuration_has_38m_parameters():
    # Paper section 4.2: "our baseline model has 38M trainable parameters" (42-d latents). By layer:
    # input 5,504 + encoder 3,558,144 + LN/Dense 2048 264,448 + 2 residual blocks 16,801,792
    # + head LN 4,096 + means and log-scales 2 x 8,605,800 + logits 204,900.
    assert _param_count(TransformerMDNConfig()) == 38_050_484


def _gin_built_config(config_text: str) -> TransformerMDNConfig:
    """The TransformerMDNConfig that `config_text` builds, as load_trained rebuilds a workdir's Task."""
    gin.clear_config()
    try:
        gin.parse_config(config_text)
        return gin.query_parameter("train.task").scoped_configurable_fn().model.config
    finally:
        gin.clear_config()


def test_old_sequence_length_binding_builds_the_same_config():
    # Workdirs trained before k was named window_chunks hold `TransformerMDNConfig.sequence_length = 32`
    # in their config.gin; load_trained re-parses it for one more release, with a warning.
    text = (pathlib.Path(__file__).parents[1] / "gin/models/transformer_mdn_paper.gin").read_text()
    old_text = text.replace("TransformerMDNConfig.window_chunks", "TransformerMDNConfig.sequence_length")
    assert old_text != text
    with pytest.warns(FutureWarning, match="sequence_length is deprecated.*use window_chunks"):
        old = _gin_built_config(old_text)
    assert old == _gin_built_config(text) and old.window_chunks == 32
    with pytest.warns(FutureWarning):
        assert TransformerMDNConfig(sequence_length=None).window_chunks is None  # None (any k) maps too
    with pytest.raises(ValueError, match="give window_chunks only"):
        TransformerMDNConfig(window_chunks=8, sequence_length=4)


@pytest.fixture(scope="module")
def tiny():
    model = TransformerMDN(TINY)
    task = MDNTask(model)
    latents = jax.random.uniform(jax.random.PRNGKey(1), (4, TINY.window_chunks, TINY.latent_dim), minval=-1, maxval=1)
    params = jax.jit(task.init)(jax.random.PRNGKey(0), {"latents": latents})
    return model, task, params, latents


@pytest.fixture(scope="module")
def generator(tiny):
    """Shared so that its sampler compiles once: every call below pads its batch to the same 8 rows."""
    model, _, params, _ = tiny
    return MDNGenerator(model, params, temperature=1.0)


def test_mixture_log_prob_matches_direct_density():
    rng = np.random.default_rng(0)
    batch, components, dim = 3, 4, 5
    logits = rng.normal(size=(batch, components))
    means = rng.normal(size=(batch, components, dim))
    log_scales = rng.normal(scale=0.5, size=(batch, components, dim))
    x = rng.normal(size=(batch, dim))
    mixture = gaussian_mixture.MixtureParams(*(jnp.asarray(a, jnp.float32) for a in (logits, means, log_scales)))
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for b in range(batch):
        density = sum(
            weights[b, m] * stats.multivariate_normal.pdf(x[b], means[b, m], np.diag(np.exp(2 * log_scales[b, m])))
            for m in range(components))
        assert float(gaussian_mixture.log_prob(mixture, jnp.asarray(x, jnp.float32))[b]) == pytest.approx(
            np.log(density), rel=1e-5)


def test_mixture_sampling_moments_and_temperature_zero():
    # Two components, weights 0.25 / 0.75, means -2 / +3, scales 0.5 / 1.
    mixture = gaussian_mixture.MixtureParams(
        logits=jnp.log(jnp.array([[0.25, 0.75]])), means=jnp.array([[[-2.0], [3.0]]]),
        log_scales=jnp.log(jnp.array([[[0.5], [1.0]]])))
    many = jax.tree.map(lambda a: jnp.broadcast_to(a, (20_000, *a.shape[1:])), mixture)
    draws = np.asarray(gaussian_mixture.sample(jax.random.PRNGKey(0), many, 1.0))[:, 0]
    assert draws.mean() == pytest.approx(0.25 * -2 + 0.75 * 3, abs=0.05)
    assert np.mean(draws < 0.5) == pytest.approx(0.25, abs=0.015)
    assert np.std(draws[draws > 0.5]) == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(gaussian_mixture.sample(jax.random.PRNGKey(0), mixture, 0.0), [[3.0]])
    with pytest.raises(ValueError, match="temperature"):
        gaussian_mixture.sample(jax.random.PRNGKey(0), mixture, -1.0)


def test_output_at_each_position_depends_only_on_earlier_latents(tiny):
    model, _, params, latents = tiny
    reference = model.apply({"params": params}, latents)
    for changed in (0, 3, TINY.window_chunks - 1):
        altered = latents.at[:, changed].add(0.7)
        output = model.apply({"params": params}, altered)
        for field, before, after in zip(reference._fields, reference, output):
            # Output i models x_i given x_<i: positions <= changed must not move, position changed+1 must.
            np.testing.assert_allclose(after[:, :changed + 1], before[:, :changed + 1], atol=1e-6, err_msg=field)
        if changed + 1 < TINY.window_chunks:
            assert not np.allclose(output.means[:, changed + 1], reference.means[:, changed + 1], atol=1e-4)


def test_task_loss_is_the_per_latent_mean_nll(tiny):
    _, task, params, latents = tiny
    loss, metrics = jax.jit(task.loss)(params, {"latents": latents}, jax.random.PRNGKey(2), jnp.int32(0))
    per_latent = task.log_likelihood(params, latents)  # [B, k]
    assert per_latent.shape == (4, TINY.window_chunks)
    # The released code's scale: the mean over every (window, position), not the sum over a window.
    assert float(loss) == pytest.approx(-float(per_latent.mean()), rel=1e-5)
    assert float(metrics["nll"]) == pytest.approx(-float(per_latent.sum(-1).mean()), rel=1e-5)
    assert float(metrics["nll_per_dim"]) == pytest.approx(float(loss) / TINY.latent_dim, rel=1e-5)
    # Its gradient is the per-window one divided by k.
    grad = jax.grad(lambda p: task.loss(p, {"latents": latents}, jax.random.PRNGKey(2), jnp.int32(0))[0])(params)
    window_grad = jax.grad(lambda p: -task.log_likelihood(p, latents).sum(-1).mean())(params)
    np.testing.assert_allclose(optax.global_norm(grad) * TINY.window_chunks, optax.global_norm(window_grad),
                               rtol=1e-4)
    assert set(task.evaluate(params, {"latents": latents}, jax.random.PRNGKey(2))) >= {"nll", "nll_per_latent"}
    with pytest.raises(ValueError, match="latents"):
        task.loss(params, {"latents": latents[:, :3]}, jax.random.PRNGKey(2), jnp.int32(0))


def test_sampled_sequence_is_what_each_step_conditioned_on(tiny, generator):
    """The per-step log-probs the cached sampler used equal the teacher-forced log-likelihood of the
    returned sequence: the cache is right and no position was re-sampled after it was conditioned on."""
    _, task, params, _ = tiny
    empty = jnp.zeros((5, TINY.window_chunks, TINY.latent_dim))
    samples, step_log_probs = generator.generate(jax.random.PRNGKey(3), empty, num_known=0)
    assert samples.shape == (5, TINY.window_chunks, TINY.latent_dim) and step_log_probs.shape == (5, TINY.window_chunks)
    np.testing.assert_allclose(step_log_probs, task.log_likelihood(params, samples), rtol=1e-4, atol=1e-4)
    # A different key gives different samples; the same key the same ones.
    np.testing.assert_array_equal(generator.sample(jax.random.PRNGKey(3), 5), samples)
    assert not np.allclose(generator.sample(jax.random.PRNGKey(4), 5), samples)


def test_continuation_keeps_the_prefix_and_conditions_on_it(tiny, generator):
    _, task, params, latents = tiny
    continued = generator.infill(jax.random.PRNGKey(5), latents, prefix_mask(TINY.window_chunks, 3))
    np.testing.assert_array_equal(continued[:, :3], latents[:, :3])
    assert not np.allclose(continued[:, 3:], latents[:, 3:])
    _, step_log_probs = generator.generate(jax.random.PRNGKey(5), latents, num_known=3)
    np.testing.assert_allclose(step_log_probs, task.log_likelihood(params, continued), rtol=1e-4, atol=1e-4)
    with pytest.raises(UnsupportedTaskError, match="prefix"):
        generator.infill(jax.random.PRNGKey(5), latents, paper_infill_mask(TINY.window_chunks, 4))
    with pytest.raises(ValueError, match="known_mask"):
        generator.infill(jax.random.PRNGKey(5), latents, np.ones(3, bool))


def test_sharded_sampling_equals_single_device(tiny, generator):
    model, _, params, _ = tiny
    assert jax.device_count() == 8  # tests/conftest.py
    sharded = generator.sample(jax.random.PRNGKey(6), 5)  # padded to 8 rows, one per device
    single = MDNGenerator(model, params, temperature=1.0, mesh=Mesh(np.array(jax.devices()[:1]), ("data",)))
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(single.sample(jax.random.PRNGKey(6), 5)), atol=1e-5)


@pytest.mark.slow
def test_short_real_training_run_lowers_validation_nll(scaled_latents, tmp_path):
    """300 steps of the training core on real folk-tune latents (k=4, d=5): validation NLL falls."""
    # k and d left open, as the CPU gin config leaves them: taken from the data.
    config = TransformerMDNConfig(latent_dim=None, window_chunks=None, d_model=32, num_layers=2, num_heads=4,
                                  mlp_dim=64, residual_width=64, num_mixtures=8)
    task = MDNTask(TransformerMDN(config))
    result = train_module.train(
        str(tmp_path), task, latents_dataset(scaled_latents["train"]),
        latents_dataset(scaled_latents["validation"]),
        optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=4000, decay_rate=0.98, clip_norm=1.0),
        global_batch_size=32, num_train_steps=300, log_every_steps=50, eval_every_steps=50, num_eval_batches=4,
        checkpoint_every_steps=300, async_checkpointing=False)
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [record for record in history if "eval/nll" in record]
    first, last = evals[0], evals[-1]
    assert first["step"] == 50 and last["step"] == 300
    # NLL per window in nats; it can go negative (densities of [-1, 1]-scaled latents exceed 1).
    assert last["eval/nll"] < first["eval/nll"] - 2.0, (first, last)
    with pytest.raises(ValueError, match="window_chunks"):
        MDNGenerator(task.model, result.state.params)
    samples = MDNGenerator(task.model, result.state.params, window_chunks=4).sample(jax.random.PRNGKey(0), 8)
    assert samples.shape == (8, 4, 5) and np.all(np.isfinite(np.asarray(samples)))
