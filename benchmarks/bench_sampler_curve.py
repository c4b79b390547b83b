"""The diffusion prior's speed-quality curve: Table 1's columns and the latent FD against the sampling steps.

    python -m benchmarks.bench_sampler_curve --demo_dir=demo_output_quick --num_samples=300 \\
        --figure=docs/figures/embedded_quick_sampler_curve.png

For the diffusion prior and VAE a demo trained (`make demo`, or `SMDIFF_DEMO_QUICK=1 make demo` for
demo_output_quick/): DDIM with eta 0 (deterministic) and eta 1 at each of --steps, and ancestral DDPM over
all N = 1000 diffusion steps (the paper's sampler, `smdiff sample --sampler=ddpm`). DDIM with eta 1 draws
each step from the posterior q(x_s | x_t, x0_hat) of the strided steps, which is ancestral sampling on the
respaced schedule, so its curve is the ancestral sampler's at fewer steps; at 1000 steps it is the same
sampler as DDPM (the notes give the largest difference between the two runs' latents).

Every point samples --num_samples unconditional and --num_samples infilling sequences (the middle half
missing, the known halves from the test split's latents, window i % m for sample i) with the same seed
(common random numbers: points differ by their sampler, not by their draws), decodes them with the
demo's VAE and scores them as `smdiff evaluate` scores Table 1 (pooled reading, 90% bootstrap interval
over resampled samples) with the latent Frechet distance to the test latents. The seconds are the
wall time of sampling both sets, compilation included. Appends the table to RESULTS.md (--no_append:
print only), writes the figure, and says, for each curve, from how few steps on every OA cell lies
within the 90% interval of the 1000-step ancestral DDPM point.
"""
from __future__ import annotations

import os
import sys
import time

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import report  # noqa: E402
from smdiff import configurables  # noqa: E402
from smdiff.codec.latent_codec import LatentDecoder, LatentScaling  # noqa: E402
from smdiff.data import tfds_io  # noqa: E402
from smdiff.evaluation import melody_sets, scoring  # noqa: E402
from smdiff.generators.diffusion import DiffusionGenerator  # noqa: E402
from smdiff.sampling import store  # noqa: E402

flags.DEFINE_string("demo_dir", None, "a finished demo folder (workdirs/diffusion, workdirs/melody_vae, tfds/)")
flags.DEFINE_string("windows", "melody_windows/embedded", "melody windows (GT: train split; Test row)")
flags.DEFINE_string("latents", "melody_latents/embedded", "latent dataset (known halves, FD reference)")
flags.DEFINE_list("steps", ["10", "20", "50", "100", "250", "1000"], "DDIM step counts")
flags.DEFINE_integer("num_samples", 300, "samples per mode and point")
flags.DEFINE_integer("max_reference", 20000, "training windows in the GT set at most (as smdiff evaluate)")
flags.DEFINE_integer("seed", 0, "seed of every point's sampling and decoding, and of the GT and Test draws")
flags.DEFINE_string("figure", None, "PNG path of the figure (e.g. docs/figures/embedded_quick_sampler_curve.png)")
flags.DEFINE_bool("no_append", False, "print the section without appending it to RESULTS.md")

MODES = ("unconditional", "infilling")
COLUMNS = (("pitch", "C"), ("pitch", "Var"), ("duration", "C"), ("duration", "Var"))
REFERENCE = "ancestral DDPM"


def sampler_points(steps: list[int]) -> list[tuple[str, str, int, float]]:
    """(curve, sampler, steps, eta) of every point: the DDIM curves, then ancestral DDPM over all steps."""
    points = [(f"DDIM eta={eta:g}", "ddim", count, eta) for eta in (0.0, 1.0) for count in steps]
    return points + [(REFERENCE, "ddpm", 1000, 1.0)]


def score_point(generator: DiffusionGenerator, decoder: LatentDecoder, test_latents: np.ndarray,
                ground_truth: melody_sets.SetOverlaps, num_samples: int, seed: int) -> tuple[dict, dict, float]:
    """({mode: `scoring.score` report}, {mode: latents [n, k, d]}, seconds of sampling) of one sampler."""
    reports, latents, seconds = {}, {}, 0.0
    window_chunks = test_latents.shape[1]
    for mode in MODES:
        spec = store.SamplingSpec(mode, num_samples)
        known = None if mode == "unconditional" else test_latents[np.arange(num_samples) % len(test_latents)]
        sample_key, decode_key = jax.random.split(jax.random.PRNGKey(seed))
        start = time.perf_counter()
        latents[mode] = store.generate(generator, spec, sample_key, known, window_chunks, num_samples)
        seconds += time.perf_counter() - start
        events = decoder(decode_key, latents[mode])
        reports[mode] = scoring.score(events, ground_truth, latents[mode], test_latents)
    return reports, latents, seconds


def _cell(report: dict, feature: str, name: str) -> str:
    value = report["table"][feature][("C", "Var").index(name)]
    low, high = report["interval_pooled"][feature][name]
    return f"{value:.2f} ({low:.2f}-{high:.2f})"


def table_lines(results: list[tuple[tuple, dict, float]], test_report: dict) -> list[str]:
    header = ["sampler", "steps"] + [f"{mode[:6]}. {feature[:3]}. {name}" for mode in MODES
                                     for feature, name in COLUMNS + (("latent", "FD"),)] + ["seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (curve, _, steps, _), reports, seconds in results:
        cells = [curve, str(steps)]
        for mode in MODES:
            cells += [_cell(reports[mode], feature, name) for feature, name in COLUMNS]
            cells.append(f"{reports[mode]['latent_fd']:.3f}")
        lines.append("| " + " | ".join(cells + [f"{seconds:.0f}"]) + " |")
    test_cells = [_cell(test_report, feature, name) for feature, name in COLUMNS] + ["-"]
    lines.append("| " + " | ".join(["Test windows", "-"] + test_cells * len(MODES) + ["-"]) + " |")
    return lines


def within(report: dict, reference: dict) -> bool:
    """Every OA cell of `report` inside the 90% interval of `reference`'s same cell."""
    for feature, name in COLUMNS:
        low, high = reference["interval_pooled"][feature][name]
        value = report["table"][feature][("C", "Var").index(name)]
        if not low <= value <= high:
            return False
    return True


def fewest_steps_within(results: list[tuple[tuple, dict, float]]) -> dict[str, int | None]:
    """curve -> the fewest steps from which on every point of the curve has all its OA cells (both modes)
    within the reference point's intervals (None: not even at its most steps)."""
    reference = next(reports for (curve, *_), reports, _ in results if curve == REFERENCE)
    verdict = {}
    for curve in dict.fromkeys(point[0] for point, _, _ in results if point[0] != REFERENCE):
        points = sorted(((point[2], reports) for point, reports, _ in results if point[0] == curve), reverse=True)
        fewest = None
        for steps, reports in points:  # from the most steps down, while every point stays within
            if not all(within(reports[mode], reference[mode]) for mode in MODES):
                break
            fewest = steps
        verdict[curve] = fewest
    return verdict


def plot(results: list[tuple[tuple, dict, float]], test_report: dict, path: str, title: str) -> None:
    """Rows: modes; columns: the four OA cells and the latent FD against the steps; 90% intervals as bars."""
    labels = [f"{feature} {name}" for feature, name in COLUMNS] + ["latent FD"]
    fig, axes = plt.subplots(len(MODES), len(labels), figsize=(3.0 * len(labels), 2.6 * len(MODES)), squeeze=False)
    curves = list(dict.fromkeys(point[0] for point, _, _ in results))
    for row, mode in enumerate(MODES):
        for column, label in enumerate(labels):
            ax = axes[row, column]
            for index, curve in enumerate(curves):
                points = sorted((point[2], reports[mode]) for point, reports, _ in results if point[0] == curve)
                steps = np.array([p[0] for p in points], dtype=float) * (1 + 0.04 * index)  # side by side
                if column < len(COLUMNS):
                    feature, name = COLUMNS[column]
                    values = np.array([r["table"][feature][("C", "Var").index(name)] for _, r in points])
                    bounds = np.array([r["interval_pooled"][feature][name] for _, r in points])  # [P, 2]
                    errors = np.abs(bounds.T - values)
                else:
                    values, errors = np.array([r["latent_fd"] for _, r in points]), None
                ax.errorbar(steps, values, yerr=errors, marker="o", ms=3, capsize=2, label=curve,
                            linestyle="-" if len(points) > 1 else "none")
            if column < len(COLUMNS):
                feature, name = COLUMNS[column]
                ax.axhline(test_report["table"][feature][("C", "Var").index(name)], color="grey", ls="--", lw=0.8,
                           label="Test windows")
            ax.set_xscale("log")
            ax.set_title(f"{mode}: {label}", fontsize=9)
            if row == len(MODES) - 1:
                ax.set_xlabel("sampling steps")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    del argv
    args = flags.FLAGS
    if not args.demo_dir:
        raise app.UsageError("--demo_dir is required")
    data_dir = os.path.join(args.demo_dir, "tfds")
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    train_events, _ = tfds_io.load_window_events(args.windows, "train", data_dir)
    test_events, _ = tfds_io.load_window_events(args.windows, "test", data_dir)
    ground_truth = melody_sets.set_overlaps(melody_sets.reference_windows(train_events, args.max_reference, rng))
    test_report = scoring.score(test_events[rng.choice(len(test_events), min(1000, len(test_events)), replace=False)],
                                ground_truth)
    test_latents = tfds_io.load_split(args.latents, "test", data_dir, ["latents"])["latents"].astype(np.float32)
    scaling = LatentScaling.load(tfds_io.dataset_dir(args.latents, data_dir))
    vae_task, vae_params = configurables.load_trained(os.path.join(args.demo_dir, "workdirs", "melody_vae"))
    decoder = LatentDecoder(vae_task.model, vae_params, scaling)
    task, params = configurables.load_trained(os.path.join(args.demo_dir, "workdirs", "diffusion"))

    start = time.time()
    results, final_latents = [], {}
    for point in sampler_points([int(s) for s in args.steps]):
        curve, sampler, steps, eta = point
        generator = DiffusionGenerator(task, params, test_latents.shape[1], sampler=sampler,
                                       num_sampling_steps=None if sampler == "ddpm" else steps, eta=eta)
        reports, latents, seconds = score_point(generator, decoder, test_latents, ground_truth, args.num_samples,
                                                args.seed)
        results.append((point, reports, seconds))
        if steps == 1000 and eta == 1.0:
            final_latents[curve] = latents
        print(f"{curve} {steps} steps: {seconds:.0f} s; "
              + "; ".join(f"{mode} {scoring.headline(r)}" for mode, r in reports.items()), flush=True)
    wall = time.time() - start

    verdict = fewest_steps_within(results)
    same = max(float(np.abs(final_latents[REFERENCE][mode] - final_latents["DDIM eta=1"][mode]).max())
               for mode in MODES) if "DDIM eta=1" in final_latents else float("nan")
    verdicts = "; ".join(f"{curve}: from {steps} steps on" if steps else f"{curve}: not even at its most steps"
                         for curve, steps in verdict.items())
    notes = (f"Diffusion prior {os.path.join(args.demo_dir, 'workdirs', 'diffusion')} (EMA params if the run kept "
             f"them), {args.num_samples} unconditional and {args.num_samples} infilling samples per point, one seed for "
             f"all points. Cells: pooled C / Var with the 90% bootstrap interval over resampled samples; latent FD "
             f"to the {len(test_latents)} test latents; 'Test windows': up to 1000 real test windows. Every OA cell "
             f"(both modes) within the {REFERENCE} 1000-step point's intervals: {verdicts}. Ancestral DDPM and DDIM "
             f"eta=1 at 1000 steps, the same sampler: largest latent difference {same:.2g}. Wall time of all points "
             f"{wall:.0f} s (sampling, decoding and scoring); 1-minute load average {load_before:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores.")
    if args.figure:
        plot(results, test_report, args.figure, f"Sampler speed vs quality, {args.num_samples} samples per point "
                                                f"({os.path.basename(os.path.normpath(args.demo_dir))})")
        notes += f" Figure: {args.figure}."
    report.publish("Latent diffusion: sampler speed vs quality", "python -m benchmarks.bench_sampler_curve "
                   + " ".join(sys.argv[1:]), table_lines(results, test_report), notes, append=not args.no_append)


if __name__ == "__main__":
    app.run(main)
