"""TransformerMDN throughput: training steps/s and sampling samples/s of the paper and CPU configurations.

  .venv/bin/python -m benchmarks.bench_mdn [--configs=cpu,paper] [--train_steps=3] [--no_append]

Training runs the training core's own jitted step (`make_train_step`: Adam with the paper's decay and
clipping, batch sharded over the mesh); sampling runs `MDNGenerator.sample` (KV-cached, one jitted scan
over the k positions, temperature 1). Compilation is timed separately and left out of the rates.

Inputs: windows of real latents from a prepared `melody_latents` dataset when `--data_dir` holds one of
the configuration's shape [k, d]; otherwise zeros of that shape (a step's time does not depend on the
values; the table says which was used). Parameters are freshly initialised.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import gin
import jax
import numpy as np

from benchmarks import report

CONFIG_FILES = {"paper": "gin/models/transformer_mdn_paper.gin", "cpu": "gin/models/transformer_mdn_cpu.gin"}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    batch_size: int  # training batch
    num_samples: int  # sampling batch
    window_chunks: int
    latent_dim: int


def build_task(case: Case):
    """The configuration's MDNTask through its gin file, at the case's [k, d]."""
    import smdiff.configurables  # noqa: F401  (registers mdn.*)

    gin.clear_config()
    gin.parse_config_files_and_bindings([CONFIG_FILES[case.name]], [
        f"mdn.TransformerMDNConfig.window_chunks = {case.window_chunks}",
        f"mdn.TransformerMDNConfig.latent_dim = {case.latent_dim}",
    ])
    return gin.query_parameter("train.task").scoped_configurable_fn()


def load_windows(case: Case, data_dir: str | None) -> tuple[np.ndarray, str]:
    """[batch, k, d] real latent windows if a matching prepared dataset exists, else zeros; and which."""
    shape = (case.batch_size, case.window_chunks, case.latent_dim)
    if data_dir:
        from smdiff.training import input_pipeline

        for name in ("melody_latents/lmd_full", "melody_latents/embedded"):
            try:
                dataset = input_pipeline.TfdsSource(name, "train", data_dir).load_process_slice()
            except Exception:  # not prepared in data_dir
                continue
            if tuple(dataset.element_spec["latents"].shape) == shape[1:]:
                batch = next(iter(dataset.batch(case.batch_size, drop_remainder=True).as_numpy_iterator()))
                return batch["latents"], f"real ({name})"
    return np.zeros(shape, np.float32), "zeros"


def bench_training(task, windows: np.ndarray, steps: int) -> tuple[float, float]:
    """(compile + first step seconds, median seconds per step) of the training core's step."""
    from smdiff.training import sharding
    from smdiff.training.optimizer import OptimizerConfig
    from smdiff.training.train_state import create_train_state, make_train_step

    mesh = sharding.make_mesh()
    optimizer = OptimizerConfig(learning_rate=3e-4, decay_steps=4000, decay_rate=0.98, clip_norm=1.0)
    batch = sharding.global_batch({"latents": windows}, mesh)
    state = create_train_state(task, optimizer.make(), jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    step = make_train_step(task, optimizer.make(), optimizer.schedule(), 0.0, mesh)
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def bench_sampling(task, params, num_samples: int, repeats: int = 2) -> tuple[float, float]:
    """(compile + first call seconds, median seconds per call of `num_samples` samples)."""
    from smdiff.generators.mdn import MDNGenerator

    generator = MDNGenerator(task.model, params, temperature=1.0)
    start = time.perf_counter()
    jax.block_until_ready(generator.sample(jax.random.PRNGKey(0), num_samples))
    first = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(generator.sample(jax.random.PRNGKey(i + 1), num_samples))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="cpu,paper")
    parser.add_argument("--train_steps", type=int, default=3, help="timed steps after the compiled first one")
    parser.add_argument("--paper_batch", type=int, default=128)
    parser.add_argument("--paper_samples", type=int, default=64)
    parser.add_argument("--cpu_batch", type=int, default=64)
    parser.add_argument("--cpu_samples", type=int, default=256)
    parser.add_argument("--cpu_shape", default="4,16", help="k,d of the CPU configuration (embedded corpus: k=4)")
    parser.add_argument("--data_dir", default="data/tfds")
    parser.add_argument("--no_append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)

    start_load = os.getloadavg()[0]
    cpu_k, cpu_d = (int(v) for v in args.cpu_shape.split(","))
    cases = {"paper": Case("paper", args.paper_batch, args.paper_samples, 32, 42),
             "cpu": Case("cpu", args.cpu_batch, args.cpu_samples, cpu_k, cpu_d)}
    rows = ["| config | params | [k, d] | inputs | train batch | train steps/s | examples/s | first step (s) "
            "| samples per call | samples/s | first sampling call (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.configs.split(","):
        case = cases[name]
        task = build_task(case)
        windows, inputs = load_windows(case, args.data_dir)
        params = jax.jit(task.init)(jax.random.PRNGKey(0), {"latents": windows})
        from smdiff.models.params import count_params
        count = count_params(params)
        train_first, step_seconds = bench_training(task, windows, args.train_steps)
        sample_first, sample_seconds = bench_sampling(task, params, case.num_samples)
        rows.append(f"| {name} | {count:,} | [{case.window_chunks}, {case.latent_dim}] | {inputs} | {case.batch_size} "
                    f"| {1 / step_seconds:.3f} | {case.batch_size / step_seconds:.1f} | {train_first:.1f} "
                    f"| {case.num_samples} | {case.num_samples / sample_seconds:.1f} | {sample_first:.1f} |")
        print(rows[-1], flush=True)

    command = "python -m benchmarks.bench_mdn " + " ".join(argv)
    notes = (f"Devices: {jax.device_count()} x {jax.devices()[0].device_kind}. Rates are medians over "
             f"{args.train_steps} timed training steps and 2 timed sampling calls after a compiled first one. "
             f"1-minute load average {start_load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end on "
             f"{os.cpu_count()} cores: other jobs shared the CPU, so CPU figures are lower bounds.")
    report.publish("TransformerMDN training and sampling throughput", command.strip(), rows, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
