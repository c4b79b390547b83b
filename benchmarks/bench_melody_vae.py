"""Melody VAE throughput: training steps/s and examples/s, and encode/decode chunks/s, per configuration.

  .venv/bin/python -m benchmarks.bench_melody_vae [--configs=cpu,big] [--train_steps=3] [--no_append]

Training runs the training core's own jitted step (`make_train_step`: Adam with Magenta's decay and
clipping, batch sharded over the mesh, scheduled sampling and KL as in training). Encoding is the
posterior (mu, sigma) of a batch; decoding is argmax decoding of a batch of z (the 32-step scan).
Compilation is timed separately and left out of the rates.

Inputs: real 2-bar chunks from the prepared `melody_chunks/embedded` train split in `--data_dir`.
Parameters are freshly initialised (a step's time does not depend on their values).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import gin
import jax
import numpy as np

from benchmarks import report

CONFIG_FILES = {"big": "gin/models/melody_vae_big.gin", "cpu": "gin/models/melody_vae_cpu.gin"}


def build_task(name: str):
    """The configuration's MelodyVAETask through its gin file."""
    import smdiff.configurables  # noqa: F401  (registers melody_vae.*)

    gin.clear_config()
    gin.parse_config_files_and_bindings([CONFIG_FILES[name]], [])
    return gin.query_parameter("train.task").scoped_configurable_fn()


def load_chunks(data_dir: str, count: int) -> np.ndarray:
    """`count` real chunks int32 [count, 32] from melody_chunks/embedded's train split."""
    from smdiff.training import input_pipeline

    dataset = input_pipeline.TfdsSource("melody_chunks/embedded", "train", data_dir).load_process_slice()
    batch = next(iter(dataset.batch(count, drop_remainder=True).as_numpy_iterator()))
    return batch["events"]


def timed(function, repeats: int) -> tuple[float, float]:
    """(seconds of the first, compiling call; median seconds of `repeats` further calls)."""
    start = time.perf_counter()
    jax.block_until_ready(function())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def bench_training(task, events: np.ndarray, steps: int) -> tuple[float, float]:
    """(compile + first step seconds, median seconds per step) of the training core's step."""
    from smdiff.training import sharding
    from smdiff.training.optimizer import OptimizerConfig
    from smdiff.training.train_state import create_train_state, make_train_step

    mesh = sharding.make_mesh()
    optimizer = OptimizerConfig(learning_rate=1e-3, decay_steps=1, decay_rate=0.9999, staircase=False,
                                min_learning_rate=1e-5, clip_norm=1.0)
    batch = sharding.global_batch({"events": events}, mesh)
    state = create_train_state(task, optimizer.make(), jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    step = make_train_step(task, optimizer.make(), optimizer.schedule(), 0.0, mesh)
    box = {"state": state}

    def one_step():
        box["state"], metrics = step(box["state"], batch)
        return metrics

    return timed(one_step, steps)


def bench_inference(task, params, events: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds of encoding the batch and of argmax-decoding as many z."""
    model = task.model
    encode = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.encode))
    decode = jax.jit(lambda p, z: model.apply({"params": p}, z, method=model.decode))
    z = np.random.default_rng(0).normal(size=(len(events), model.config.z_size)).astype(np.float32)
    _, encode_seconds = timed(lambda: encode(params, events), repeats)
    _, decode_seconds = timed(lambda: decode(params, z), repeats)
    return encode_seconds, decode_seconds


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="cpu,big")
    parser.add_argument("--train_steps", type=int, default=3, help="timed steps after the compiled first one")
    parser.add_argument("--cpu_batch", type=int, default=64)
    parser.add_argument("--big_batch", type=int, default=512, help="cat-mel_2bar_big's batch")
    parser.add_argument("--data_dir", default="data/tfds")
    parser.add_argument("--no_append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)

    start_load = os.getloadavg()[0]
    batch_sizes = {"cpu": args.cpu_batch, "big": args.big_batch}
    rows = ["| config | params | train batch | train steps/s | examples/s | first step (s) "
            "| encode chunks/s | argmax decode chunks/s |",
            "|---|---|---|---|---|---|---|---|"]
    for name in args.configs.split(","):
        task = build_task(name)
        events = load_chunks(args.data_dir, batch_sizes[name])
        params = jax.jit(task.init)(jax.random.PRNGKey(0), {"events": events})
        from smdiff.models.params import count_params
        count = count_params(params)
        train_first, step_seconds = bench_training(task, events, args.train_steps)
        encode_seconds, decode_seconds = bench_inference(task, params, events, max(args.train_steps, 2))
        size = len(events)
        rows.append(f"| {name} | {count:,} | {size} | {1 / step_seconds:.3f} | {size / step_seconds:.1f} "
                    f"| {train_first:.1f} | {size / encode_seconds:.1f} | {size / decode_seconds:.1f} |")
        print(rows[-1], flush=True)

    command = "python -m benchmarks.bench_melody_vae " + " ".join(argv)
    notes = (f"Devices: {jax.device_count()} x {jax.devices()[0].device_kind}; inputs: real chunks of "
             f"melody_chunks/embedded. Rates are medians over {args.train_steps} timed training steps (and as many "
             f"encode/decode calls, at least 2) after a compiled first one. 1-minute load average "
             f"{start_load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores: "
             "other jobs shared the CPU, so CPU figures are lower bounds.")
    report.publish("Melody VAE training and inference throughput", command.strip(), rows, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
