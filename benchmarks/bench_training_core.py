"""Overhead of the training loop: `smdiff.training.loop.train` against the bare jitted step it runs.

  .venv/bin/python -m benchmarks.bench_training_core [--model_gin=gin/models/melody_vae_tiny.gin]
      [--batch_size=64] [--steps=100] [--pairs=12] [--data_dir=DIR] [--no_append]

Both sides train the same Task on real melody chunks (`melody_chunks/embedded` from --data_dir when it
is prepared there, else chunks built from the MIDI files in tests/data/midi) through the same input
pipeline. The bare side only dispatches the jitted, sharded step on each batch; the loop side is
`train()` (adds the device prefetch of the next batch, the on-device metric sums and NaN guard, the
progress bar and the preemption check; no evaluation, one log and one checkpoint at the end) and
reports its own steps/s, which leaves out the first step and the final save. A small model shows the
loop's fixed cost per step most clearly.

The runs come in --pairs pairs (a loop run, then a bare run, each of --steps timed steps), and the
result is the median over pairs of each pair's loop/bare ratio, with a 95% bootstrap interval over
the pairs: load from other jobs drifts on a scale of seconds to minutes, so the two runs of a pair see
about the same machine, while the spread between single runs (25% on the shared 2-core machine) is
larger than the overhead measured. Each side's CPU time per timed step (the process's, all threads:
input pipeline and XLA included) is the median over pairs.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from unittest import mock

import gin
import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_task(model_gin: str):
    from smdiff import configurables  # noqa: F401  (registers the model's configurables)

    gin.clear_config()
    gin.add_config_file_search_path(REPO)
    gin.parse_config_file(model_gin)
    return gin.query_parameter("train.task").scoped_configurable_fn()


def chunk_source(data_dir: str | None, scratch: str):
    """A TfdsSource of real melody chunks and a words-long description of it."""
    import tensorflow_datasets as tfds

    from smdiff.training.input_pipeline import TfdsSource
    from tfds_builders import melody_common
    from tfds_builders.melody_chunks import MelodyChunks

    if data_dir and os.path.isdir(os.path.join(data_dir, "melody_chunks", "embedded")):
        return TfdsSource("melody_chunks/embedded", "train", data_dir), "melody_chunks/embedded"
    config = dataclasses.replace(melody_common.MIDI_DIR, name="midi_dir_bench", seed=1, workers=1)
    builder = MelodyChunks(config=config, data_dir=scratch)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.join(REPO, "tests", "data", "midi")))
    count = builder.info.splits["train"].num_examples
    return TfdsSource("melody_chunks/midi_dir_bench", "train", scratch), f"{count} chunks of tests/data/midi"


def bare_run(task, source, batch_size: int, steps: int, optimizer) -> tuple[float, float]:
    """(steps/s, CPU ms/step) of the jitted step fed by the same input pipeline, with nothing else: no
    per-step sync or metrics."""
    from smdiff.training import input_pipeline, sharding
    from smdiff.training.train_state import create_train_state, make_train_step

    mesh = sharding.make_mesh()
    batches = input_pipeline.train_batches(source, batch_size, seed=0)
    batch = sharding.global_batch(next(batches), mesh)
    state = create_train_state(task, optimizer.make(), jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    step = make_train_step(task, optimizer.make(), optimizer.schedule(), 0.0, mesh)
    state, _ = step(state, batch)  # compile
    jax.block_until_ready(state)
    cpu_start, start = time.process_time(), time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, sharding.global_batch(next(batches), mesh))
    jax.block_until_ready((state, metrics))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return steps / seconds, 1000 * cpu_seconds / steps


def loop_run(task, source, batch_size: int, steps: int, optimizer, workdir: str) -> tuple[float, float]:
    """(steps/s, CPU ms/step) of train() over `steps` timed steps: its own meter's rate, and the
    process's CPU time over the same steps (read by a meter that also reads the CPU clock)."""
    from smdiff.training import loop as train_module
    from smdiff.training.throughput import ThroughputMeter

    cpu = {}

    class CpuMeter(ThroughputMeter):
        def step_done(self) -> None:
            if "start" not in cpu:  # the first step's end starts the meter's clock
                cpu["start"] = time.process_time()
            super().step_done()

        def report(self) -> dict[str, float]:
            cpu.setdefault("seconds", time.process_time() - cpu["start"])  # the one report: the last step
            return super().report()

    with mock.patch.object(train_module, "ThroughputMeter", CpuMeter):
        result = train_module.train(workdir, task, source, None, optimizer=optimizer, global_batch_size=batch_size,
                                    num_train_steps=steps + 1, log_every_steps=steps + 1,
                                    checkpoint_every_steps=steps + 1)
    return result.train_metrics["train/steps_per_sec"], 1000 * cpu["seconds"] / steps


def median_interval(values: list[float], confidence: float = 0.95, num_resamples: int = 2000
                    ) -> tuple[float, float, float]:
    """(median, low, high): the median of `values` and its central bootstrap interval."""
    from smdiff.evaluation.pianoroll_metrics import bootstrap_draws, central_interval

    values = np.asarray(values)
    draws = bootstrap_draws(len(values), num_resamples)  # [R, n] counts
    medians = np.array([np.median(np.repeat(values, counts)) for counts in draws])
    return (float(np.median(values)), *central_interval(medians, confidence))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_gin", default="gin/models/melody_vae_tiny.gin")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="timed steps of each run")
    parser.add_argument("--pairs", type=int, default=12, help="(loop run, bare run) pairs")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--no_append", action="store_true", help="print the table without appending it")
    args = parser.parse_args(argv)
    if args.pairs < 2 or args.steps < 1:
        parser.error("need --pairs >= 2 and --steps >= 1")

    from benchmarks import report
    from smdiff.training.optimizer import OptimizerConfig

    task = build_task(args.model_gin)
    optimizer = OptimizerConfig()
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        source, data = chunk_source(args.data_dir, os.path.join(scratch, "tfds"))
        loop_runs, bare_runs = [], []  # (steps/s, CPU ms/step) per pair
        for pair in range(args.pairs):
            loop_runs.append(loop_run(task, source, args.batch_size, args.steps, optimizer,
                                      os.path.join(scratch, f"run{pair}")))
            bare_runs.append(bare_run(task, source, args.batch_size, args.steps, optimizer))
            print(f"pair {pair}: loop {loop_runs[-1][0]:.1f}, bare {bare_runs[-1][0]:.1f} steps/s", file=sys.stderr)
    minutes = (time.perf_counter() - start) / 60
    loop_rates, loop_cpu = np.array(loop_runs).T
    bare_rates, bare_cpu = np.array(bare_runs).T
    ratios = loop_rates / bare_rates
    ratio, low, high = median_interval(list(ratios))
    lines = ["| model | global batch | devices | pairs x timed steps | bare step (steps/s) | train() loop (steps/s) | "
             "loop / bare (95% interval) | CPU ms/step bare / loop |",
             "|---|---|---|---|---|---|---|---|",
             f"| {args.model_gin} | {args.batch_size} | {jax.device_count()} | {args.pairs} x {args.steps} | "
             f"{np.median(bare_rates):.1f} | {np.median(loop_rates):.1f} | {ratio:.3f} ({low:.3f}-{high:.3f}) | "
             f"{np.median(bare_cpu):.1f} / {np.median(loop_cpu):.1f} |"]
    notes = (f"Data: {data}. Each pair runs train() then the bare step; rates and CPU ms/step are medians over "
             f"the pairs, loop / bare is the median of the per-pair ratios with a 95% bootstrap interval "
             f"(2000 resamples of the pairs). Per-pair ratios: {', '.join(f'{r:.3f}' for r in ratios)}. "
             f"1-minute load average {load_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
             f"on {os.cpu_count()} cores (the benchmark's own threads included); {minutes:.1f} min in all.")
    command = "python -m benchmarks.bench_training_core " + " ".join(argv)
    report.publish("Training loop overhead (bench_training_core)", command.strip(), lines, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
