"""Why deterministic DDIM scores worse than ancestral sampling on a demo's prior: the samples' spread.

    python -m benchmarks.bench_sampler_spread --demo_dir=demo_output_quick --num_samples=300

For a finished demo's diffusion prior: (1) each sampler's unconditional samples [n, k, d] against the
train latents, per latent dim: the samples' standard deviation over the data's (1 = the data's spread;
< 1 concentrated, > 1 over-dispersed) and the distance of the means in data standard deviations, with the
share of entries at the clip bound; (2) the denoiser itself on test latents diffused to step t: the
regression slope of its eps estimate on the true eps (1 = removes all the noise, 0 = none) and the eps
mean squared error, beside that of the per-dim linear (Wiener) estimator for the train latents'
variances, a * v / (a * v + 1 - a) averaged over dims: an upper bound on the Bayes error. With the
exact denoiser DDIM eta = 0 keeps the data's spread at 1000 steps (tests/test_gaussian_diffusion.py), so
a spread far from 1 there is the trained denoiser's doing.
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import report
from smdiff import configurables
from smdiff.data import tfds_io
from smdiff.diffusion import gaussian
from smdiff.generators.diffusion import DiffusionGenerator

flags.DEFINE_string("demo_dir", None, "a finished demo folder (workdirs/diffusion, tfds/)")
flags.DEFINE_string("latents", "melody_latents/embedded", "latent dataset (train: the data's spread)")
flags.DEFINE_integer("num_samples", 300, "unconditional samples per sampler")
flags.DEFINE_list("probe_steps", ["20", "100", "300", "500", "1000"], "steps t of the denoiser probe")
flags.DEFINE_integer("seed", 0, "seed of the sampling and of the probe's noise")
flags.DEFINE_bool("no_append", False, "print the section without appending it to RESULTS.md")

# (label, sampler, DDIM steps, eta, clip_x0)
SAMPLERS = (("DDIM eta=0", "ddim", 50, 0.0, True), ("DDIM eta=0", "ddim", 1000, 0.0, True),
            ("DDIM eta=0, no x0 clip", "ddim", 50, 0.0, False), ("DDIM eta=1", "ddim", 50, 1.0, True),
            ("ancestral DDPM", "ddpm", None, 1.0, True))


def spread_row(samples: np.ndarray, data: np.ndarray) -> list[str]:
    """Cells of one sampler: samples, data [n, k, d] -> sd ratio mean (range), mean offset, share at +-1."""
    flat, reference = samples.reshape(-1, samples.shape[-1]), data.reshape(-1, data.shape[-1])
    data_sd = reference.std(0)
    ratio = flat.std(0) / data_sd
    offset = np.abs(flat.mean(0) - reference.mean(0)) / data_sd
    return [f"{ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f})", f"{offset.mean():.2f}",
            f"{np.mean(np.abs(samples) >= 0.999):.3f}"]


def denoiser_probe(eps_fn: gaussian.EpsFn, schedule: gaussian.Schedule, x0: np.ndarray, t: int,
                   rng: np.random.Generator) -> tuple[float, float]:
    """(slope of eps_hat regressed on eps, eps MSE) of the denoiser on x0 [n, k, d] diffused to step t."""
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    x_t = gaussian.q_sample(jnp.asarray(x0), schedule.alpha_bars[t], jnp.asarray(eps), schedule.one_minus_alpha_bars[t])
    eps_hat = np.asarray(eps_fn(x_t, jnp.full((len(x0),), jnp.sqrt(schedule.alpha_bars[t]))))
    return float(np.sum(eps_hat * eps) / np.sum(eps * eps)), float(np.mean(np.square(eps_hat - eps)))


def wiener_eps_error(variances: np.ndarray, alpha_bar: float) -> float:
    """Eps MSE of the best per-dim linear estimator for data of per-dim `variances` [d] at alpha_bar."""
    return float(np.mean(alpha_bar * variances / (alpha_bar * variances + 1.0 - alpha_bar)))


def main(argv):
    del argv
    args = flags.FLAGS
    if not args.demo_dir:
        raise app.UsageError("--demo_dir is required")
    load_before = os.getloadavg()[0]
    data_dir = os.path.join(args.demo_dir, "tfds")
    train = tfds_io.load_split(args.latents, "train", data_dir, ["latents"])["latents"].astype(np.float32)
    test = tfds_io.load_split(args.latents, "test", data_dir, ["latents"])["latents"].astype(np.float32)
    task, params = configurables.load_trained(os.path.join(args.demo_dir, "workdirs", "diffusion"))

    lines = ["| sampler | steps | x0 clip | sample sd / data sd, mean over dims (range) | abs. mean offset / data sd "
             "| share at +-1 |", "|---|---|---|---|---|---|"]
    for label, sampler, steps, eta, clip in SAMPLERS:
        generator = DiffusionGenerator(task, params, train.shape[1], sampler=sampler, num_sampling_steps=steps,
                                       eta=eta, clip_x0=clip)
        samples = np.asarray(generator.sample(jax.random.PRNGKey(args.seed), args.num_samples))
        lines.append("| " + " | ".join([label, str(steps or task.schedule.num_steps), "yes" if clip else "no"]
                                       + spread_row(samples, train)) + " |")
        print(lines[-1], flush=True)

    eps_fn, rng = jax.jit(task.eps_fn(params)), np.random.default_rng(args.seed)
    variances = train.reshape(-1, train.shape[-1]).var(0)
    lines += ["", "| step t | eps_hat slope on eps | eps MSE | per-dim Wiener eps MSE (bound on the Bayes error) |",
              "|---|---|---|---|"]
    for t in (int(step) for step in args.probe_steps):
        slope, mse = denoiser_probe(eps_fn, task.schedule, test, t, rng)
        bound = wiener_eps_error(variances, float(task.schedule.alpha_bars[t]))
        lines.append(f"| {t} | {slope:.3f} | {mse:.4f} | {bound:.2g} |")
    notes = (f"Diffusion prior {os.path.join(args.demo_dir, 'workdirs', 'diffusion')}, {args.num_samples} "
             f"unconditional samples per sampler (seed {args.seed}), against the {len(train)} train latents "
             f"({train.shape[1]} x {train.shape[2]}); denoiser probe on the {len(test)} test latents. 1-minute load "
             f"average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores.")
    report.publish("Latent diffusion: the samplers' spread against the data's", "python -m benchmarks."
                   "bench_sampler_spread " + " ".join(sys.argv[1:]), lines, notes, append=not args.no_append)


if __name__ == "__main__":
    app.run(main)
