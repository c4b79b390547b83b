"""A short real training run of the tiny melody VAE through `smdiff.training.loop.train`, and its report.

Real 2-bar chunks of music21 folk tunes (train: the first tunes, validation: later ones). The run is
short, so the test asks what a short run must show: the loss falls and the report is consistent.
"""
import json
import os

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from note_seq import midi_io

from smdiff import configurables  # noqa: F401  (registers the melody VAE with gin)
from smdiff import train as train_job
from smdiff import vae_report
from smdiff.training import loop as train_module
from smdiff.training.optimizer import OptimizerConfig
from test_melody_vae import real_chunks

pytestmark = pytest.mark.slow


def tiny_task():
    gin.clear_config()
    gin.add_config_file_search_path(train_job.REPO_ROOT)
    gin.parse_config_file(os.path.join(train_job.REPO_ROOT, "gin", "models", "melody_vae_tiny.gin"))
    task = gin.query_parameter("train.task").scoped_configurable_fn()
    gin.clear_config()
    return task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    chunks = real_chunks(80)
    train_chunks, validation_chunks = chunks[:-128], chunks[-128:]
    as_dataset = lambda events: tf.data.Dataset.from_tensor_slices({"events": events})  # noqa: E731
    task = tiny_task()
    workdir = str(tmp_path_factory.mktemp("melody_vae_run"))
    result = train_module.train(
        workdir, task, as_dataset(train_chunks), as_dataset(validation_chunks),
        optimizer=OptimizerConfig(learning_rate=3e-3, decay_rate=1.0), global_batch_size=32,
        num_train_steps=60, log_every_steps=10, eval_every_steps=60, num_eval_batches=2,
        checkpoint_every_steps=60, async_checkpointing=False)
    return task, result, workdir, validation_chunks


def test_loss_falls(trained):
    _, _, workdir, _ = trained
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [row["train/loss"] for row in map(json.loads, f) if "train/loss" in row]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0], losses


def test_report_on_validation_chunks(trained, tmp_path):
    task, result, _, validation_chunks = trained
    params = result.state.params
    batches = [validation_chunks[i:i + 64] for i in range(0, len(validation_chunks), 64)]
    report = vae_report.reconstruction_statistics(task.model, params, batches)
    assert report["num_chunks"] == len(validation_chunks)
    # The same accuracy as the Task's evaluation of the same chunks.
    metrics = jax.jit(task.evaluate)(params, {"events": jnp.asarray(validation_chunks)}, jax.random.PRNGKey(0))
    np.testing.assert_allclose(report["reconstruction_accuracy"], metrics["free_running_accuracy"], rtol=1e-5)
    np.testing.assert_allclose(report["chunk_reconstruction_accuracy"], metrics["chunk_accuracy"], rtol=1e-5)
    np.testing.assert_allclose(report["kl_bits_per_dim_mean"], metrics["kl_bits_per_dim"], rtol=1e-4)
    model = task.model
    mu, _ = model.apply({"params": params}, jnp.asarray(validation_chunks), method=model.encode)
    decoded = np.asarray(model.apply({"params": params}, mu, method=model.decode))
    onsets = validation_chunks >= 2  # note-on classes
    np.testing.assert_allclose(report["onset_reconstruction_accuracy"],
                               (decoded == validation_chunks)[onsets].mean(), rtol=1e-6)
    sigma = np.array(report["mean_sigma_per_dim"])
    assert report["active_dims"] == np.flatnonzero(sigma < 0.98).tolist()

    events, paths = vae_report.write_prior_samples(task.model, params, jax.random.PRNGKey(1), 3, str(tmp_path))
    assert events.shape == (3, 32) and len(paths) == 3
    for melody, path in zip(events, paths):  # each file holds its melody's notes (a short run may give rests)
        assert len(midi_io.midi_file_to_note_sequence(path).notes) == int((melody >= 2).sum())
    written = vae_report.write_report(report, str(tmp_path))
    with open(written) as f:
        assert json.load(f)["num_chunks"] == len(validation_chunks)
