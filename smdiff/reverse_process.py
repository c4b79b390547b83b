"""Paper Fig. 3: sample quality along the reverse process of the diffusion prior.

    smdiff reverse-process --prior_workdir=workdirs/ddpm --vae_workdir=workdirs/vae --data_dir=data/tfds \\
        --num_samples=1000 --every=50 --output_dir=eval

Runs unconditional sampling once and records the model's estimate of x0 after every `--every` reverse
steps; each recorded set is decoded by the VAE and scored like a Table 1 row (`smdiff.evaluation.scoring`:
OA Consistency and Variance of pitch and duration against the training set, pooled reading, and latent
FD and MMD against the test split's latents). The last recorded set is the final sample. The x0 estimate rather than the noisy state
x_t is scored because it is what the chain would output if it stopped there; x_t at large t decodes to
noise. Writes reverse_process.json and figures/reverse_process.png to --output_dir.

The runs are made in chunks of --chunk_size samples (`reverse_process_chunks/trajectory-00001-of-00004/`,
smdiff/sampling/shards.py), so a killed run resumes where it stopped; the scores come from all chunks at
the end. Launched as several processes (launch/local.sh --processes=N, slurm.sh, tpu_pod.sh), each makes
its own chunks on all of its devices and process 0 scores them; the result does not depend on the number
of processes or devices.
"""
from __future__ import annotations

import json
from typing import Sequence

import jax
import numpy as np
from absl import app, flags

from smdiff import configurables, jobflags, joblog
from smdiff.codec.latent_codec import LatentDecoder, LatentScaling
from smdiff.data import tfds_io
from smdiff.evaluation import melody_sets, plots, scoring
from smdiff.generators.diffusion import SAMPLERS, DiffusionGenerator
from smdiff.sampling import shards
from smdiff.tasks.latent_diffusion import LatentDiffusionTask
from smdiff.training import sharding, topology
from smdiff.training.loop_helpers import enable_compilation_cache
from smdiff.training.paths import is_url, run_path

CURVES = tuple(scoring.METRICS.values())
CHUNK_PREFIX = "trajectory"
CHUNKS_FOLDER = "reverse_process_chunks"  # under --output_dir
RENAMED_FLAGS = {"num_steps": "num_sampling_steps"}


def make_chunks(generator, decoder: LatentDecoder, num_samples: int, chunk_size: int, every: int, rng: jax.Array,
                chunks_dir: str, metadata: dict | None = None, shard_id: int | None = None,
                num_shards: int | None = None) -> None:
    """This shard's chunks of unconditional runs with their x0 estimates recorded every `every` steps, each
    decoded (`<chunks_dir>/trajectory-00001-of-00004/trajectory.npz`: `latents` [R, m, k, d], `events`
    [R, m, k * 32], `steps` [R]); finished chunks of a killed run are kept.

    Args:
      generator: a DiffusionGenerator.
      shard_id, num_shards: default the jax process index and count.
    """
    shard_id = jax.process_index() if shard_id is None else shard_id
    num_shards = jax.process_count() if num_shards is None else num_shards
    metadata = {**(metadata or {}), "num_samples": num_samples, "chunk_size": chunk_size, "every": every,
                "rows_per_step": sharding.rows_per_step()}
    shards.check_same_run(chunks_dir, [CHUNK_PREFIX], metadata)
    sample_rng, decode_rng = jax.random.split(rng)
    made_by = shards.made_by()
    for chunk in shards.shard_chunks(shards.plan_chunks(num_samples, chunk_size), shard_id, num_shards):
        if shards.is_complete(chunks_dir, CHUNK_PREFIX, chunk):
            continue
        result = generator.trajectory(jax.random.fold_in(sample_rng, chunk.index), chunk.size, every=every)
        estimates = np.asarray(result.trajectory)  # [R, m, k, d]
        events = np.stack([decoder(jax.random.fold_in(jax.random.fold_in(decode_rng, index), chunk.index), estimate)
                           for index, estimate in enumerate(estimates)])  # [R, m, k * 32]

        def write_files(folder, estimates=estimates, events=events, steps=np.asarray(result.trajectory_steps)):
            shards.save_npz(folder / "trajectory.npz", {"latents": estimates, "events": events.astype(np.int16),
                                                        "steps": steps})
            return made_by

        shards.write_chunk(chunks_dir, CHUNK_PREFIX, chunk, write_files, metadata)


def metrics_along_reverse_process(chunks_dir: str, num_samples: int, chunk_size: int,
                                  ground_truth: melody_sets.SetOverlaps, test_latents: np.ndarray) -> dict:
    """Scores of the recorded x0 estimates of every chunk (`make_chunks`, any number of processes).

    Args:
      ground_truth: OAs of the training windows (the GT of the OA metric).
      test_latents: [m, k, d] scaled test latents (FD and MMD reference).
    Returns:
      {"steps": [R] the step t of each estimate (descending), curve name -> [R] values}.
    Raises:
      FileNotFoundError: naming a chunk that is not complete (rerun the job to make it).
    """
    for chunk in shards.plan_chunks(num_samples, chunk_size):
        if not shards.is_complete(chunks_dir, CHUNK_PREFIX, chunk):
            raise FileNotFoundError(f"{chunk.name(CHUNK_PREFIX)} is not complete in {chunks_dir}; rerun the job")
    parts = [shards.load_npz(folder / "trajectory.npz") for folder in shards.completed_chunks(chunks_dir, CHUNK_PREFIX)]
    estimates = np.concatenate([part["latents"] for part in parts], axis=1)  # [R, n, k, d]
    events = np.concatenate([part["events"] for part in parts], axis=1)  # [R, n, k * 32]
    steps = parts[0]["steps"]
    curves = {name: [] for name in CURVES}
    for index, step in enumerate(steps):
        values = scoring.headline(scoring.score(events[index], ground_truth, estimates[index], test_latents))
        for key, label in scoring.METRICS.items():
            curves[label].append(values[key])
        print(f"step {step}: " + ", ".join(f"{name} {values[-1]:.3f}" for name, values in curves.items()), flush=True)
    return {"steps": [int(step) for step in steps], **curves}


def write(results: dict, output_dir: str) -> str:
    """reverse_process.json and figures/reverse_process.png; returns the figure's path."""
    root = run_path(output_dir)
    (root / "figures").mkdir(parents=True, exist_ok=True)
    (root / "reverse_process.json").write_text(json.dumps(results, indent=1))
    path = str(root / "figures" / "reverse_process.png")
    plots.metrics_along_reverse_process(np.asarray(results["steps"]),
                                        {name: np.asarray(results[name]) for name in CURVES}, path,
                                        title="Unconditional samples along the reverse process (x0 estimates)")
    return path


FLAGS = jobflags.namespace()
flags.DEFINE_string("prior_workdir", None, "train workdir of the diffusion prior", flag_values=FLAGS)
flags.DEFINE_string("vae_workdir", None, "train workdir of the melody VAE that decodes the latents",
                    flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "where reverse_process.json and the figure go", flag_values=FLAGS)
jobflags.define_melody_reference(FLAGS)  # --data_dir, --windows, --latents, --max_reference
flags.DEFINE_integer("num_samples", 1000, "unconditional samples scored at every recorded step", flag_values=FLAGS)
flags.DEFINE_integer("chunk_size", 250, "samples per chunk (the unit of resuming and of sharing the work)",
                     flag_values=FLAGS)
flags.DEFINE_integer("every", 50, "record the x0 estimate every this many reverse steps", flag_values=FLAGS)
flags.DEFINE_enum("sampler", "ddpm", SAMPLERS, "diffusion sampler", flag_values=FLAGS)
flags.DEFINE_integer("num_sampling_steps", None, "DDIM steps (default: all N diffusion steps)", flag_values=FLAGS)
flags.DEFINE_float("eta", 0.0, "DDIM stochasticity (1 = ancestral)", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the sampling, decoding and GT draws", flag_values=FLAGS)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    if not FLAGS.prior_workdir or not FLAGS.vae_workdir or not FLAGS.output_dir:
        raise app.UsageError("--prior_workdir, --vae_workdir and --output_dir are required")
    topology.start(FLAGS.output_dir)  # jax.distributed from the launcher's environment; checks the device count
    joblog.setup(None if is_url(FLAGS.output_dir) else FLAGS.output_dir, "reverse_process")
    enable_compilation_cache()
    test_latents = tfds_io.load_split(FLAGS.latents, "test", FLAGS.data_dir, ["latents"])["latents"].astype(np.float32)
    train_events, _ = tfds_io.load_window_events(FLAGS.windows, "train", FLAGS.data_dir)
    ground_truth = melody_sets.set_overlaps(
        melody_sets.reference_windows(train_events, FLAGS.max_reference, np.random.default_rng(FLAGS.seed)))
    task, params = configurables.load_trained(FLAGS.prior_workdir)
    if not isinstance(task, LatentDiffusionTask):
        raise TypeError(f"{FLAGS.prior_workdir} trained a {type(task).__name__}, not a LatentDiffusionTask")
    generator = DiffusionGenerator(task, params, test_latents.shape[1], sampler=FLAGS.sampler,
                                   num_sampling_steps=FLAGS.num_sampling_steps, eta=FLAGS.eta)
    vae_task, vae_params = configurables.load_trained(FLAGS.vae_workdir)
    scaling = LatentScaling.load(tfds_io.dataset_dir(FLAGS.latents, FLAGS.data_dir))
    decoder = LatentDecoder(vae_task.model, vae_params, scaling)
    chunks_dir = str(run_path(FLAGS.output_dir) / CHUNKS_FOLDER)
    make_chunks(generator, decoder, FLAGS.num_samples, FLAGS.chunk_size, FLAGS.every, jax.random.PRNGKey(FLAGS.seed),
                chunks_dir, {"prior_workdir": FLAGS.prior_workdir, "vae_workdir": FLAGS.vae_workdir,
                             "sampler": FLAGS.sampler, "num_sampling_steps": FLAGS.num_sampling_steps,
                             "eta": FLAGS.eta, "seed": FLAGS.seed})
    topology.wait_for_all("smdiff reverse-process: chunks made")
    if jax.process_index() == 0:
        results = metrics_along_reverse_process(chunks_dir, FLAGS.num_samples, FLAGS.chunk_size, ground_truth,
                                                test_latents)
        print(f"wrote {write(results, FLAGS.output_dir)}")
