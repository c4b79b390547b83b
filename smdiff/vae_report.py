"""The melody VAE's validation report: reconstruction, KL per dimension, active dimensions, prior samples.

    smdiff vae-report --workdir=workdirs/melody_vae_embedded \
        [--dataset=melody_chunks/embedded --split=validation --output_dir=<workdir>/vae_report]

Every chunk of the split is encoded; its mean mu is decoded by argmax with no teacher forcing and
compared with the input, per step (`reconstruction_accuracy`), per whole chunk
(`chunk_reconstruction_accuracy`) and on the note-onset steps only (`onset_reconstruction_accuracy`:
most steps of a melody hold a note, NO_EVENT, which the per-step figure counts too). The KL of each z dimension to N(0, 1) and the mean posterior sigma
of each dimension are averaged over the chunks; a dimension is active when its mean sigma is below
0.98 (the criterion of Mittal et al.'s released code). Prior samples z ~ N(0, I) are decoded at
temperature 0.001 (the paper's near-argmax) and written as MIDI. Everything lands in `report.json`.
"""
import json
import logging
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags

from smdiff import configurables, jobflags, joblog
from smdiff.data.melody import NOTE_OFF, events_to_note_sequence, note_sequence_to_midi_file
from smdiff.models.melody_vae import MelodyVAE
from smdiff.tasks.melody_vae import gaussian_kl
from smdiff.training.input_pipeline import TfdsSource
from smdiff.training.loop_helpers import enable_compilation_cache
from smdiff.training.paths import run_path

ACTIVE_SIGMA_THRESHOLD = 0.98
PRIOR_TEMPERATURE = 0.001
FIRST_PITCH_CLASS = NOTE_OFF + 1  # classes from here on are note onsets


def _batch_statistics(model: MelodyVAE, params, events: jax.Array) -> dict[str, jax.Array]:
    """Sums over one batch [batch, 32] of what the report averages."""
    mu, sigma = model.apply({"params": params}, events, method=model.encode)
    decoded = model.apply({"params": params}, mu, method=model.decode)
    correct = decoded == events
    onsets = events >= FIRST_PITCH_CLASS
    return {
        "correct_steps": correct.sum(),
        "correct_onsets": (correct & onsets).sum(),
        "onsets": onsets.sum(),
        "correct_chunks": correct.all(-1).sum(),
        "kl_nats_per_dim": gaussian_kl(mu, sigma).sum(0),  # [z]
        "sigma_per_dim": sigma.sum(0),  # [z]
        "chunks": jnp.asarray(events.shape[0]),
    }


def reconstruction_statistics(model: MelodyVAE, params, batches: Iterable[np.ndarray]) -> dict:
    """Reconstruction accuracy, KL per dim and active dims over every chunk of `batches` (int32 [b, 32])."""
    batch_statistics = jax.jit(lambda p, events: _batch_statistics(model, p, events))
    totals = None
    for index, events in enumerate(batches):
        sums = jax.device_get(batch_statistics(params, jnp.asarray(events, jnp.int32)))
        totals = sums if totals is None else jax.tree_util.tree_map(np.add, totals, sums)
        if (index + 1) % 20 == 0:
            logging.info("report: %d chunks encoded and decoded", int(totals["chunks"]))
    if totals is None:
        raise ValueError("no chunks to evaluate: the split is empty")
    chunks = int(totals["chunks"])
    kl_bits_per_dim = totals["kl_nats_per_dim"] / chunks / np.log(2.0)
    mean_sigma = totals["sigma_per_dim"] / chunks
    active = np.flatnonzero(mean_sigma < ACTIVE_SIGMA_THRESHOLD)
    return {
        "num_chunks": chunks,
        "reconstruction_accuracy": float(totals["correct_steps"]) / (chunks * model.config.seq_len),
        "chunk_reconstruction_accuracy": float(totals["correct_chunks"]) / chunks,
        "onset_reconstruction_accuracy": float(totals["correct_onsets"]) / max(int(totals["onsets"]), 1),
        "kl_bits_per_dim_mean": float(kl_bits_per_dim.mean()),
        "kl_bits_total": float(kl_bits_per_dim.sum()),
        "num_active_dims": int(active.size),
        "active_dims": active.tolist(),
        "active_sigma_threshold": ACTIVE_SIGMA_THRESHOLD,
        "kl_bits_per_dim": kl_bits_per_dim.round(5).tolist(),
        "mean_sigma_per_dim": mean_sigma.round(5).tolist(),
    }


def write_prior_samples(model: MelodyVAE, params, rng: jax.Array, num_samples: int, output_dir: str
                        ) -> tuple[np.ndarray, list[str]]:
    """Decodes z ~ N(0, I) at temperature 0.001 and writes each 2-bar melody as a MIDI file.

    Returns the events int32 [num_samples, 32] and the MIDI paths."""
    z_rng, sample_rng = jax.random.split(rng)
    z = jax.random.normal(z_rng, (num_samples, model.config.z_size))
    events = np.asarray(model.apply({"params": params}, z, sample_rng, PRIOR_TEMPERATURE, method=model.decode))
    paths = []
    for index, melody in enumerate(events):
        path = str(run_path(output_dir) / f"prior_sample_{index:03d}.mid")
        note_sequence_to_midi_file(events_to_note_sequence(melody), path)
        paths.append(path)
    return events, paths


def write_report(report: dict, output_dir: str) -> str:
    """Writes `report.json` so that a half-written report never looks complete (locally: written aside and
    renamed; an object store makes an object visible only once whole); its path."""
    output = run_path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    partial, path = output / "report.json.partial", output / "report.json"
    partial.write_text(json.dumps(report, indent=1))
    partial.rename(path)
    return str(path)


FLAGS = jobflags.namespace()
flags.DEFINE_string("workdir", None, "the melody VAE's train workdir", flag_values=FLAGS)
flags.DEFINE_string("dataset", "melody_chunks/embedded", "TFDS name/config of the chunks", flag_values=FLAGS)
flags.DEFINE_string("split", "validation", "split to report on", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "TFDS data_dir (None = TFDS default)", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "default: <workdir>/vae_report", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 512, "chunks per batch", flag_values=FLAGS)
flags.DEFINE_integer("num_prior_samples", 16, "prior samples written as MIDI", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the prior samples", flag_values=FLAGS)
flags.DEFINE_bool("ema", True, "use the EMA params where the run kept them", flag_values=FLAGS)
flags.DEFINE_integer("checkpoint_step", None, "the checkpoint to report on (default: the latest)", flag_values=FLAGS)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir (the melody VAE's train workdir) is required")
    output_dir = FLAGS.output_dir or str(run_path(FLAGS.workdir) / "vae_report")
    joblog.setup(output_dir, "vae_report")
    enable_compilation_cache()
    task, params = configurables.load_trained(FLAGS.workdir, ema=FLAGS.ema, step=FLAGS.checkpoint_step)
    if not isinstance(task.model, MelodyVAE):
        raise ValueError(f"{FLAGS.workdir} holds a {type(task.model).__name__}, not a MelodyVAE")
    dataset = TfdsSource(FLAGS.dataset, FLAGS.split, FLAGS.data_dir).load_process_slice()
    batches = (example["events"] for example in tfds.as_numpy(dataset.batch(FLAGS.batch_size)))
    report = reconstruction_statistics(task.model, params, batches)
    _, report["prior_samples"] = write_prior_samples(
        task.model, params, jax.random.PRNGKey(FLAGS.seed), FLAGS.num_prior_samples, output_dir)
    report.update(workdir=FLAGS.workdir, dataset=FLAGS.dataset, split=FLAGS.split, ema=FLAGS.ema,
                  checkpoint_step=FLAGS.checkpoint_step)
    path = write_report(report, output_dir)
    summary = {key: report[key] for key in (
        "num_chunks", "reconstruction_accuracy", "chunk_reconstruction_accuracy", "onset_reconstruction_accuracy",
        "kl_bits_per_dim_mean", "kl_bits_total", "num_active_dims")}
    print(json.dumps(summary, indent=1))
    logging.info("report written to %s", path)
