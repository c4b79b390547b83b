"""Paper Fig. 3: sample quality along the reverse process of the diffusion prior.

    smdiff reverse-process --prior_workdir=workdirs/ddpm --vae_workdir=workdirs/vae --data_dir=data/tfds \\
        --num_samples=1000 --every=50 --output_dir=eval

Runs unconditional sampling once and records the model's estimate of x0 after every `--every` reverse
steps; each recorded set is decoded by the VAE and scored like a Table 1 row (`smdiff.evaluation.scoring`:
OA Consistency and Variance of pitch and duration against the training set, pooled reading, and latent
FD and MMD against the test split's latents). The last recorded set is the final sample. The x0 estimate rather than the noisy state
x_t is scored because it is what the chain would output if it stopped there; x_t at large t decodes to
noise. Writes reverse_process.json and figures/reverse_process.png to --output_dir.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import jax
import numpy as np
from absl import app, flags

from smdiff import configurables, jobflags, joblog
from smdiff.codec.latent_codec import LatentDecoder, LatentScaling
from smdiff.data import tfds_io
from smdiff.evaluation import melody_sets, plots, scoring
from smdiff.generators.diffusion import SAMPLERS, DiffusionGenerator
from smdiff.tasks.latent_diffusion import LatentDiffusionTask
from smdiff.training.loop_helpers import enable_compilation_cache

CURVES = tuple(scoring.METRICS.values())
RENAMED_FLAGS = {"num_steps": "num_sampling_steps"}


def metrics_along_reverse_process(generator, decoder: LatentDecoder, ground_truth: melody_sets.SetOverlaps,
                                  test_latents: np.ndarray, num_samples: int, every: int,
                                  rng: jax.Array) -> dict:
    """Scores of the x0 estimates of one unconditional run, recorded every `every` reverse steps.

    Args:
      generator: a DiffusionGenerator.
      ground_truth: OAs of the training windows (the GT of the OA metric).
      test_latents: [m, k, d] scaled test latents (FD and MMD reference).
    Returns:
      {"steps": [R] the step t of each estimate (descending), curve name -> [R] values}.
    """
    sample_rng, decode_rng = jax.random.split(rng)
    result = generator.trajectory(sample_rng, num_samples, every=every)
    curves = {name: [] for name in CURVES}
    for index, estimate in enumerate(np.asarray(result.trajectory)):  # [n, k, d] per recorded step
        events = decoder(jax.random.fold_in(decode_rng, index), estimate)
        values = scoring.headline(scoring.score(events, ground_truth, estimate, test_latents))
        for key, label in scoring.METRICS.items():
            curves[label].append(values[key])
        print(f"step {result.trajectory_steps[index]}: "
              + ", ".join(f"{name} {values[-1]:.3f}" for name, values in curves.items()), flush=True)
    return {"steps": [int(step) for step in result.trajectory_steps], **curves}


def write(results: dict, output_dir: str) -> str:
    """reverse_process.json and figures/reverse_process.png; returns the figure's path."""
    os.makedirs(os.path.join(output_dir, "figures"), exist_ok=True)
    with open(os.path.join(output_dir, "reverse_process.json"), "w") as f:
        json.dump(results, f, indent=1)
    path = os.path.join(output_dir, "figures", "reverse_process.png")
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
flags.DEFINE_integer("every", 50, "record the x0 estimate every this many reverse steps", flag_values=FLAGS)
flags.DEFINE_enum("sampler", "ddpm", SAMPLERS, "diffusion sampler", flag_values=FLAGS)
flags.DEFINE_integer("num_sampling_steps", None, "DDIM steps (default: all N diffusion steps)", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the sampling, decoding and GT draws", flag_values=FLAGS)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    if not FLAGS.prior_workdir or not FLAGS.vae_workdir or not FLAGS.output_dir:
        raise app.UsageError("--prior_workdir, --vae_workdir and --output_dir are required")
    joblog.setup(FLAGS.output_dir, "reverse_process")
    enable_compilation_cache()
    test_latents = tfds_io.load_split(FLAGS.latents, "test", FLAGS.data_dir, ["latents"])["latents"].astype(np.float32)
    train_events, _ = tfds_io.load_window_events(FLAGS.windows, "train", FLAGS.data_dir)
    ground_truth = melody_sets.set_overlaps(
        melody_sets.reference_windows(train_events, FLAGS.max_reference, np.random.default_rng(FLAGS.seed)))
    task, params = configurables.load_trained(FLAGS.prior_workdir)
    if not isinstance(task, LatentDiffusionTask):
        raise TypeError(f"{FLAGS.prior_workdir} trained a {type(task).__name__}, not a LatentDiffusionTask")
    generator = DiffusionGenerator(task, params, test_latents.shape[1], sampler=FLAGS.sampler,
                                   num_sampling_steps=FLAGS.num_sampling_steps)
    vae_task, vae_params = configurables.load_trained(FLAGS.vae_workdir)
    scaling = LatentScaling.load(tfds_io.dataset_dir(FLAGS.latents, FLAGS.data_dir))
    decoder = LatentDecoder(vae_task.model, vae_params, scaling)
    results = metrics_along_reverse_process(generator, decoder, ground_truth, test_latents, FLAGS.num_samples,
                                            FLAGS.every, jax.random.PRNGKey(FLAGS.seed))
    print(f"wrote {write(results, FLAGS.output_dir)}")
