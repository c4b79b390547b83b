"""The latent-diffusion Task and the diffusion Generator, trained briefly on real latents.

The latents are the posterior means of real folk-tune windows under the small VAE of
tests/real_latents.py, scaled with the train split's statistics (melody_latents' recipe).
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_latents import K, latents_dataset, scaled_corpus_latents
from smdiff.training import loop as train_module
from smdiff.generators.base import paper_infill_mask, prefix_mask
from smdiff.generators.diffusion import DiffusionGenerator
from smdiff.models.transformer_ddpm import TransformerDDPM, TransformerDDPMConfig
from smdiff.tasks.latent_diffusion import LatentDiffusionTask
from smdiff.training.optimizer import OptimizerConfig

SMALL = TransformerDDPMConfig(
    data_dim=5, d_model=32, num_layers=2, num_heads=2, mlp_dim=64, res_width=64, film_hidden=32,
    noise_encoding_dim=32,
)


@pytest.fixture(scope="module")
def scaled_latents():
    """{'train', 'validation'}: float32 [n, K, 5] scaled posterior means of real windows."""
    scaled = scaled_corpus_latents()
    assert scaled["train"].shape[-1] == SMALL.data_dim
    return scaled


@pytest.fixture(scope="module")
def trained(scaled_latents, tmp_path_factory):
    """(task, params, metrics history) of a 160-step run of a small denoiser."""
    workdir = tmp_path_factory.mktemp("latent_diffusion")
    task = LatentDiffusionTask(TransformerDDPM(SMALL))
    result = train_module.train(
        str(workdir), task, latents_dataset(scaled_latents["train"]), latents_dataset(scaled_latents["validation"]),
        optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=4000, decay_rate=0.98, clip_norm=1.0),
        global_batch_size=32, num_train_steps=160, log_every_steps=40, eval_every_steps=40, num_eval_batches=4,
        checkpoint_every_steps=160, async_checkpointing=False)
    history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return task, result.state.params, history


def test_task_loss_and_evaluation_metrics(scaled_latents):
    task = LatentDiffusionTask(TransformerDDPM(SMALL), probe_steps=[10, 500])
    batch = {"latents": jnp.asarray(scaled_latents["train"][:8])}
    params = task.init(jax.random.PRNGKey(0), batch)
    loss, metrics = jax.jit(task.loss)(params, batch, jax.random.PRNGKey(1), jnp.int32(0))
    assert loss.shape == () and np.isfinite(loss) and set(metrics) == {"loss"}
    evaluation = jax.jit(task.evaluate)(params, batch, jax.random.PRNGKey(2))
    assert set(evaluation) == {"loss", "eps_mse_t10", "eps_mse_t500"}
    with pytest.raises(ValueError, match="probe_steps"):
        LatentDiffusionTask(TransformerDDPM(SMALL), probe_steps=(0,))


@pytest.mark.slow
def test_short_real_training_run_lowers_validation_loss(trained):
    _, _, history = trained
    evals = [record for record in history if "eval/loss" in record]
    first, last = evals[0], evals[-1]
    assert first["step"] == 40 and last["step"] == 160
    assert last["eval/loss"] < 0.9 * first["eval/loss"], evals
    # At every fixed noise level the denoising error ends below the blind guess (E[eps^2] = 1).
    assert all(last[f"eval/eps_mse_t{t}"] < 1.0 for t in (100, 300, 600, 900)), last


def test_generator_samples_infills_and_varies(trained, scaled_latents):
    task, params, _ = trained
    generator = DiffusionGenerator(task, params, window_chunks=K, sampler="ddim", num_sampling_steps=50, eta=1.0)
    samples = generator.sample(jax.random.PRNGKey(3), 5)  # 5 is padded to the 8 devices and trimmed
    assert samples.shape == (5, K, 5) and np.all(np.abs(samples) <= 1.0)

    known = jnp.asarray(scaled_latents["validation"][:6])
    for mask in (paper_infill_mask(K, 2), prefix_mask(K, 1)):
        filled = generator.infill(jax.random.PRNGKey(4), known, mask)
        np.testing.assert_array_equal(np.asarray(filled)[:, mask], np.asarray(known)[:, mask])
        assert not np.allclose(filled[:, ~mask], known[:, ~mask])

    near = generator.variation(jax.random.PRNGKey(5), known, 0.05)
    far = generator.variation(jax.random.PRNGKey(5), known, 1.0)
    assert float(jnp.abs(near - known).mean()) < float(jnp.abs(far - known).mean())

    trajectory = generator.trajectory(jax.random.PRNGKey(6), 3, every=10)
    assert trajectory.trajectory.shape == (5, 3, K, 5) and len(trajectory.trajectory_steps) == 5
    np.testing.assert_allclose(trajectory.trajectory[-1], trajectory.x0, atol=1e-5)


def test_generator_ancestral_sampler_and_bad_requests(trained):
    task, params, _ = trained
    generator = DiffusionGenerator(task, params, window_chunks=K)  # the paper's: ancestral, all 1000 steps
    assert generator.sample(jax.random.PRNGKey(7), 8).shape == (8, K, 5)
    with pytest.raises(ValueError, match="known_mask must have shape"):
        generator.infill(jax.random.PRNGKey(8), jnp.zeros((2, K, 5)), np.ones(K + 1, bool))
    with pytest.raises(ValueError, match="known must have shape"):
        generator.infill(jax.random.PRNGKey(8), jnp.zeros((2, K, 4)), np.ones(K, bool))
    with pytest.raises(ValueError, match="unknown sampler"):
        DiffusionGenerator(task, params, window_chunks=K, sampler="euler")
