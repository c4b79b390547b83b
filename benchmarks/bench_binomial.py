"""Binomial diffusion on piano rolls: training steps/s and sampling time per segment.

    python -m benchmarks.bench_binomial --configs=cpu,paper --train_steps=3 [--data_dir=data/tfds]
    python -m benchmarks.bench_binomial --eval_dir=<output_dir of smdiff.pianoroll_eval> --configs=

Trains on real chorale segments (the built `pianorolls/bach_chorales` dataset, [64, 56] rolls at 4 steps
per quarter) with the training core's step, and samples 100 reverse steps with both samplers. Appends a
section to benchmarks/RESULTS.md unless --no_append. With --eval_dir it also appends the quality table of
an evaluation run (model vs the Bernoulli baseline, pooled OA reading).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

UNETS = {  # the gin model files' settings (gin/models/unet_{cpu,paper}.gin)
    "cpu": dict(base_width=16, blocks_per_level=1, attention_head_width=16),
    "paper": dict(base_width=48, blocks_per_level=2, attention_head_width=32),
}


def load_rolls(data_dir: str, batch_size: int) -> tuple[np.ndarray, float]:
    """A batch of real training rolls [batch, 64, 56] and the dataset's density of ones."""
    import tensorflow_datasets as tfds

    from smdiff.data.tfds_io import load_metadata

    builder = tfds.builder("pianorolls/bach_chorales", data_dir=data_dir)
    dataset = builder.as_dataset(split="train", shuffle_files=False).batch(batch_size, drop_remainder=True)
    rolls = next(iter(tfds.as_numpy(dataset)))["roll"]
    return rolls, load_metadata(builder.data_dir)["density"]


def timed(function, repeats: int) -> tuple[float, float]:
    """(first call seconds, compile included; median seconds of the next `repeats` calls)."""
    start = time.perf_counter()
    jax.block_until_ready(function(0))
    first = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(i + 1))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def bench(name: str, rolls: np.ndarray, density: float, train_steps: int, sample_batch: int) -> list[str]:
    from smdiff.generators.pianoroll import PianorollGenerator
    from smdiff.models.unet import UNet, UNetConfig
    from smdiff.tasks.binomial import BinomialTask
    from smdiff.training import sharding
    from smdiff.training.optimizer import OptimizerConfig
    from smdiff.training.train_state import create_train_state, make_train_step

    task = BinomialTask(UNet(UNetConfig(**UNETS[name])), density, loss_type="bce")
    mesh = sharding.make_mesh()
    optimizer = OptimizerConfig(learning_rate=5e-5, decay_rate=1.0, clip_norm=0.0)
    batch = sharding.global_batch({"roll": rolls}, mesh)
    state = create_train_state(task, optimizer.make(), jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    step = make_train_step(task, optimizer.make(), optimizer.schedule(), 0.0, mesh)
    holder = {"state": state}

    def train_once(_):
        holder["state"], metrics = step(holder["state"], batch)
        return metrics

    train_first, step_seconds = timed(train_once, train_steps)
    params = holder["state"].params
    from smdiff.models.params import count_params
    count = count_params(params)
    rows = []
    for sampler in ("posterior", "paper"):
        generator = PianorollGenerator(task, params, rolls.shape[1:], sampler)
        sample_first, sample_seconds = timed(lambda i: generator.sample(jax.random.PRNGKey(i), sample_batch), 1)
        rows.append(f"| {name} | {count:,} | {list(rolls.shape[1:])} | {rolls.shape[0]} | {1 / step_seconds:.3f} "
                    f"| {rolls.shape[0] / step_seconds:.1f} | {train_first:.0f} | {sampler} | {sample_batch} "
                    f"| {sample_seconds / sample_batch:.2f} | {sample_first:.0f} |")
        print(rows[-1], flush=True)
    return rows


QUALITY_COLUMNS = ("pitch_consistency/pooled", "pitch_variance/pooled", "duration_consistency/pooled",
                   "duration_variance/pooled", "note_precision", "note_recall", "note_f1", "pitch_class_distance",
                   "out_of_key_rate")


def quality_rows(eval_dir: str) -> tuple[list[str], str]:
    """The evaluation's scores as one markdown table, and the list of scores the model loses."""
    import json

    from smdiff.pianoroll_eval import losses_to_baseline

    with open(os.path.join(eval_dir, "metrics.json")) as f:
        results = json.load(f)
    with open(os.path.join(eval_dir, "bootstrap.json")) as f:
        uncertainty = json.load(f)
    rows = ["| task | system | " + " | ".join(QUALITY_COLUMNS) + " |", "|---" * (len(QUALITY_COLUMNS) + 2) + "|"]
    for task, systems in results.items():
        for system, scores in systems.items():
            cells = [f"{scores[c]:.3f}" if c in scores else "-" for c in QUALITY_COLUMNS]
            rows.append(f"| {task} | {system} | " + " | ".join(cells) + " |")
    losses = losses_to_baseline(results, uncertainty=uncertainty)
    verdict = ("The model beats the Bernoulli baseline on every score (both OA readings)." if not losses else
               "The model does not beat the Bernoulli baseline on: " + "; ".join(losses) + ".")
    return rows, verdict


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="cpu,paper")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--train_steps", type=int, default=3, help="timed steps after the compiled first one")
    parser.add_argument("--sample_batch", type=int, default=8)
    parser.add_argument("--data_dir", default="data/tfds")
    parser.add_argument("--eval_dir", default=None, help="output_dir of a pianoroll_eval run to report")
    parser.add_argument("--eval_note", default="", help="how the evaluated model was trained (for the report)")
    parser.add_argument("--no_append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)

    command = ("python -m benchmarks.bench_binomial " + " ".join(argv)).strip()
    from benchmarks import report

    if args.eval_dir:
        rows, verdict = quality_rows(args.eval_dir)
        notes = " ".join(x for x in (args.eval_note, verdict) if x)
        if args.no_append:
            print("\n".join(rows + ["", notes]))
        else:
            report.append_section("Binomial diffusion on the chorales: quality vs baselines", command, rows, notes)
    if not args.configs:
        return
    start_load = os.getloadavg()[0]
    rolls, density = load_rolls(args.data_dir, args.batch_size)
    rows = ["| config | params | roll [T, P] | train batch | train steps/s | examples/s | first step (s) | sampler "
            "| sample batch | s per segment (100 steps) | first sampling call (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.configs.split(","):
        rows += bench(name, rolls, density, args.train_steps, args.sample_batch)
    notes = (f"Devices: {jax.device_count()} x {jax.devices()[0].device_kind}. Training: the training core's step "
             f"(BCE, Adam) on real chorale rolls, median of {args.train_steps} steps after the compiled first one. "
             f"Sampling: one timed call of {args.sample_batch} segments x 100 reverse steps after a compiled one. "
             f"1-minute load average {start_load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end on "
             f"{os.cpu_count()} cores: other jobs shared the CPU, so CPU figures are lower bounds.")
    if args.no_append:
        print("\n".join(rows + ["", notes]))
    else:
        report.append_section("Binomial diffusion (U-Net on piano rolls): throughput", command, rows, notes)


if __name__ == "__main__":
    main(sys.argv[1:])
