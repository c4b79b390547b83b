"""Paper Fig. 3: sample quality along the reverse process of the diffusion prior.

    smdiff reverse-process --prior_workdir=workdirs/ddpm --vae_workdir=workdirs/vae --data_dir=data/tfds \\
        --num_samples=1000 --every=50 --output_dir=eval

Runs unconditional sampling once and records the model's estimate of x0 after every `--every` reverse
steps; each recorded set is decoded by the VAE and scored like a Table 1 row (OA Consistency and Variance
of pitch and duration against the training set, pooled reading) and by latent FD and MMD against the test
split's latents. The last recorded set is the final sample. The x0 estimate rather than the noisy state
x_t is scored because it is what the chain would output if it stopped there; x_t at large t decodes to
noise. Writes reverse_process.json and figures/reverse_process.png to --output_dir.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags, logging

from smdiff import evaluate, flag_defs, sample
from smdiff.evaluation import latent_metrics, melody_sets, plots
from smdiff.sampling.decode import LatentDecoder

CURVES = ("pitch C", "pitch Var", "duration C", "duration Var", "latent FD", "latent MMD")


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
        relative = melody_sets.relative_to(melody_sets.set_overlaps(events), ground_truth)
        for feature in melody_sets.FEATURES:
            consistency, variance = relative[feature]
            curves[f"{feature} C"].append(consistency)
            curves[f"{feature} Var"].append(variance)
        curves["latent FD"].append(latent_metrics.frechet_distance(test_latents, estimate))
        curves["latent MMD"].append(latent_metrics.mmd_polynomial(test_latents, estimate))
        logging.info("step %d: %s", result.trajectory_steps[index],
                     ", ".join(f"{name} {values[-1]:.3f}" for name, values in curves.items()))
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


def define_flags() -> None:
    flag_defs.define("string", "prior_workdir", None, "train workdir of the diffusion prior")
    flag_defs.define("string", "vae_workdir", None, "train workdir of the melody VAE that decodes the latents")
    flag_defs.define("string", "output_dir", None, "where reverse_process.json and the figure go")
    evaluate.define_reference_flags()
    flag_defs.define("integer", "num_samples", 1000, "unconditional samples scored at every recorded step")
    flag_defs.define("integer", "every", 50, "record the x0 estimate every this many reverse steps")
    flag_defs.define("enum", "sampler", "ddpm", "diffusion sampler", enum_values=("ddpm", "ddim"))
    flag_defs.define("integer", "num_steps", None, "DDIM steps (default: all N)")
    flag_defs.define("integer", "seed", 0, "seed of the sampling, decoding and GT draws")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    FLAGS = flags.FLAGS
    if not FLAGS.prior_workdir or not FLAGS.vae_workdir or not FLAGS.output_dir:
        raise app.UsageError("--prior_workdir, --vae_workdir and --output_dir are required")
    import tfds_builders  # noqa: F401  (registers smdiff's datasets)
    from smdiff.codec.latent_codec import LatentScaling
    from smdiff.generators.diffusion import DiffusionGenerator

    latents = tfds.builder(FLAGS.latents, data_dir=FLAGS.data_dir)
    test_latents, _ = sample.load_latent_split(latents, "test")
    train_events, _ = evaluate.load_windows(tfds.builder(FLAGS.windows, data_dir=FLAGS.data_dir), "train")
    ground_truth = melody_sets.set_overlaps(
        evaluate.reference_windows(train_events, FLAGS.max_reference, np.random.default_rng(FLAGS.seed)))
    generator = DiffusionGenerator.from_workdir(FLAGS.prior_workdir, test_latents.shape[1], sampler=FLAGS.sampler,
                                                num_steps=FLAGS.num_steps)
    decoder = sample.load_vae_decoder(FLAGS.vae_workdir, LatentScaling.load(latents.data_dir))
    results = metrics_along_reverse_process(generator, decoder, ground_truth, test_latents, FLAGS.num_samples,
                                            FLAGS.every, jax.random.PRNGKey(FLAGS.seed))
    print(f"wrote {write(results, FLAGS.output_dir)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
