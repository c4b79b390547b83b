"""Overhead of the training loop: `smdiff.training.loop.train` against the bare jitted step it runs.

  .venv/bin/python -m benchmarks.bench_training_core [--model_gin=gin/models/melody_vae_tiny.gin]
      [--batch_size=64] [--steps=200] [--repeats=3] [--data_dir=DIR] [--no_append]

Both sides train the same Task on real melody chunks (`melody_chunks/embedded` from --data_dir when it
is prepared there, else chunks built from the MIDI files in tests/data/midi) through the same input
pipeline. The bare side only dispatches the jitted, sharded step on each batch; the loop side is
`train()` (adds the device prefetch of the next batch, the on-device metric sums and NaN guard, the
progress bar and the preemption check; no evaluation, one log and one checkpoint at the end) and
reports its own steps/s, which leaves out the first step and the final save. A small model shows the
loop's fixed cost per step most clearly.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import gin
import jax

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


def bare_steps_per_sec(task, source, batch_size: int, steps: int, optimizer) -> float:
    """The jitted step fed by the same input pipeline, with nothing else: no per-step sync or metrics."""
    from smdiff.training import input_pipeline, sharding
    from smdiff.training.train_state import create_train_state, make_train_step

    mesh = sharding.make_mesh()
    batches = input_pipeline.train_batches(source, batch_size, seed=0)
    batch = sharding.global_batch(next(batches), mesh)
    state = create_train_state(task, optimizer.make(), jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    step = make_train_step(task, optimizer.make(), optimizer.schedule(), 0.0, mesh)
    state, _ = step(state, batch)  # compile
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, sharding.global_batch(next(batches), mesh))
    jax.block_until_ready((state, metrics))
    return steps / (time.perf_counter() - start)


def loop_steps_per_sec(task, source, batch_size: int, steps: int, optimizer, workdir: str) -> float:
    from smdiff.training import loop as train_module

    result = train_module.train(workdir, task, source, None, optimizer=optimizer, global_batch_size=batch_size,
                                num_train_steps=steps + 1, log_every_steps=steps + 1,
                                checkpoint_every_steps=steps + 1)
    return result.train_metrics["train/steps_per_sec"]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_gin", default="gin/models/melody_vae_tiny.gin")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements; the best of each is kept")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--no_append", action="store_true", help="print the table without appending it")
    args = parser.parse_args(argv)

    from benchmarks import report
    from smdiff.training.optimizer import OptimizerConfig

    task = build_task(args.model_gin)
    optimizer = OptimizerConfig()
    with tempfile.TemporaryDirectory() as scratch:
        source, data = chunk_source(args.data_dir, os.path.join(scratch, "tfds"))
        bare_rates, loop_rates = [], []
        for repeat in range(args.repeats):  # alternating, so a burst of load hits both sides alike
            bare_rates.append(bare_steps_per_sec(task, source, args.batch_size, args.steps, optimizer))
            loop_rates.append(loop_steps_per_sec(task, source, args.batch_size, args.steps, optimizer,
                                                 os.path.join(scratch, f"run{repeat}")))
        bare, loop = max(bare_rates), max(loop_rates)
    load = os.getloadavg()[0]
    lines = ["| model | global batch | devices | bare step (steps/s) | train() loop (steps/s) | loop examples/s | loop / bare |",
             "|---|---|---|---|---|---|---|",
             f"| {args.model_gin} | {args.batch_size} | {jax.device_count()} | {bare:.1f} | {loop:.1f} | "
             f"{loop * args.batch_size:.0f} | {loop / bare:.2f} |"]
    notes = (f"Data: {data}. Best of {args.repeats} alternating runs of {args.steps} timed steps each "
             f"(bare: {', '.join(f'{r:.1f}' for r in bare_rates)}; loop: {', '.join(f'{r:.1f}' for r in loop_rates)} "
             f"steps/s). 1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores (other jobs "
             f"share this machine, so rates vary between runs).")
    command = "python -m benchmarks.bench_training_core " + " ".join(argv)
    report.publish("Training loop overhead (bench_training_core)", command.strip(), lines, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
