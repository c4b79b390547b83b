"""Latent-diffusion throughput: training steps/s at batch 64 and DDPM sampling samples/s, with MFU.

    python -m benchmarks.bench_latent_diffusion [--models=paper,cpu] [--train_steps=10]
        [--sample_batch=1000] [--sample_steps=1000] [--peak_tflops=0.19] [--no_record]

The models are built from gin/models/transformer_ddpm_<name>.gin (the paper's: k=32 latents of d=42;
the CPU one is timed at the same [32, 42] shape and at the embedded corpus's k=4). Training runs the
train loop's own jitted, sharded step (Adam, clipping) on every local device; sampling runs
`DiffusionGenerator.sample`, the ancestral sampler. On a CPU, 1000 steps at batch 1000 take hours, so
pass a smaller --sample_batch and --sample_steps: the sampler is then timed over `sample_steps` steps
and the 1000-step rate is that time scaled by 1000 / sample_steps (every step costs the same), which
the table says. The inputs are a fixed array of the right shape: values do not change the work done.

Model FLOPs utilization = (FLOPs XLA counts for one train step, or one denoiser call per sampling step)
/ time / --peak_tflops, the device's peak float32 rate, which you must supply for your machine (the
default is an estimate for 2 cores of an AVX-512 AMD EPYC: 2 x 3 GHz x 32 FLOP/cycle).
"""
from __future__ import annotations

import dataclasses
import os
import time

from absl import app, flags

flags.DEFINE_list("models", ["paper", "cpu"], "gin/models/transformer_ddpm_<name>.gin to time")
flags.DEFINE_integer("train_steps", 10, "timed training steps (after one compile-and-warm-up step)")
flags.DEFINE_integer("batch_size", 64, "training batch (the paper's 64)")
flags.DEFINE_integer("sample_batch", 1000, "samples drawn at once")
flags.DEFINE_integer("sample_steps", 1000, "reverse steps actually run (the rate is reported for 1000)")
flags.DEFINE_float("peak_tflops", 0.192, "peak float32 TFLOP/s of the devices used, for MFU")
flags.DEFINE_bool("no_record", False, "print the table without appending it to benchmarks/RESULTS.md")
FLAGS = flags.FLAGS

PAPER_STEPS = 1000
# (model, k, d) shapes timed: the paper's [32, 42], and the embedded corpus's k = 4.
SHAPES = {"paper": [(32, 42)], "cpu": [(32, 42), (4, 42)]}


def build_task(model_name: str):
    import gin

    from smdiff import configurables  # noqa: F401  (registers the diffusion configurables)

    gin.clear_config()
    gin.parse_config_file(os.path.join("gin", "models", f"transformer_ddpm_{model_name}.gin"))
    return gin.query_parameter("train.task").scoped_configurable_fn()


def fixed_latents(batch: int, k: int, d: int):
    """A deterministic [batch, k, d] array in [-1, 1] (timing does not depend on the values)."""
    import numpy as np

    grid = np.arange(batch * k * d, dtype=np.float32).reshape(batch, k, d)
    return np.sin(0.37 * grid).astype(np.float32)


def flops_of(compiled) -> float:
    from smdiff.training.throughput import compiled_flops

    return compiled_flops(compiled) or float("nan")


def time_training(task, k: int, d: int) -> dict:
    import jax

    from smdiff.training import sharding
    from smdiff.training.optimizer import OptimizerConfig
    from smdiff.training.train_state import create_train_state, make_train_step

    mesh = sharding.make_mesh()
    optimizer = OptimizerConfig()  # the paper's: Adam 1e-3 x0.98 / 4000 steps, clip 1.0
    batch = sharding.global_batch({"latents": fixed_latents(FLAGS.batch_size, k, d)}, mesh)
    state = create_train_state(task, optimizer.make(), jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    from smdiff.models.params import count_params
    params = count_params(state.params)
    step = make_train_step(task, optimizer.make(), optimizer.schedule(), 0.0, mesh)
    flops = flops_of(step.lower(state, batch).compile())
    state, metrics = step(state, batch)  # compile and warm up
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(FLAGS.train_steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / FLAGS.train_steps
    return {"params": params, "steps_per_s": 1 / seconds, "flops": flops, "params_tree": state.params}


def time_sampling(task, params, k: int, d: int) -> dict:
    import jax
    import jax.numpy as jnp

    from smdiff.generators.diffusion import DiffusionGenerator

    # Same network, a schedule of `sample_steps` steps: every step costs one denoiser call.
    short_task = dataclasses.replace(task, num_steps=FLAGS.sample_steps, probe_steps=(1,))
    generator = DiffusionGenerator(short_task, params, window_chunks=k)
    forward = jax.jit(lambda p, x, level: task.model.apply({"params": p}, x, level))
    x = jnp.asarray(fixed_latents(FLAGS.sample_batch, k, d))
    step_flops = flops_of(forward.lower(params, x, jnp.ones(FLAGS.sample_batch)).compile())
    jax.block_until_ready(generator.sample(jax.random.PRNGKey(0), FLAGS.sample_batch))  # compile
    start = time.perf_counter()
    jax.block_until_ready(generator.sample(jax.random.PRNGKey(1), FLAGS.sample_batch))
    seconds = time.perf_counter() - start
    seconds_for_paper_steps = seconds * PAPER_STEPS / FLAGS.sample_steps
    return {"samples_per_s": FLAGS.sample_batch / seconds_for_paper_steps, "seconds": seconds_for_paper_steps,
            "flops": step_flops * PAPER_STEPS}


def main(argv) -> None:
    del argv
    import jax

    peak = FLAGS.peak_tflops * 1e12
    load_before = os.getloadavg()[0]  # other jobs on the same cores slow every figure down
    rows = []
    for model_name in FLAGS.models:
        task = build_task(model_name)
        for k, d in SHAPES[model_name]:
            train = time_training(task, k, d)
            sample = time_sampling(task, train["params_tree"], k, d)
            train_mfu = train["flops"] * train["steps_per_s"] / peak
            sample_mfu = sample["flops"] / sample["seconds"] / peak
            rows.append(
                f"| {model_name} | [{k}, {d}] | {train['params'] / 1e6:.2f}M | {train['steps_per_s']:.2f} | "
                f"{train['flops'] / 1e9:.1f} | {100 * train_mfu:.1f}% | {FLAGS.sample_batch} x {FLAGS.sample_steps} | "
                f"{sample['samples_per_s']:.3g} | {sample['seconds']:.3g} | {100 * sample_mfu:.1f}% |")
            print(rows[-1], flush=True)
    devices = jax.devices()
    lines = [
        f"Devices: {len(devices)} x {devices[0].device_kind}; training batch {FLAGS.batch_size}, "
        f"{FLAGS.train_steps} timed steps; MFU against {FLAGS.peak_tflops} TFLOP/s peak float32.",
        "",
        "| model | [k, d] | params | train steps/s | GFLOP/step | train MFU | sampled (batch x steps) | "
        "samples/s (1000 steps) | s per batch (1000 steps) | sampling MFU |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    notes = (f"1-minute load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
             f"on {os.cpu_count()} cores (other jobs shared them).")
    if FLAGS.sample_steps != PAPER_STEPS:
        notes += (" Sampling rates for 1000 steps are the measured time of `sample_steps` steps scaled by "
                  f"1000 / {FLAGS.sample_steps}.")
    command = "python -m benchmarks.bench_latent_diffusion " + " ".join(
        f"--{name}={FLAGS[name].value if not isinstance(FLAGS[name].value, list) else ','.join(FLAGS[name].value)}"
        for name in ("models", "train_steps", "batch_size", "sample_batch", "sample_steps", "peak_tflops"))
    if FLAGS.no_record:
        print("\n".join(lines + [notes]))
    else:
        from benchmarks import report

        report.append_section("Latent diffusion: TransformerDDPM training and sampling throughput", command,
                              lines, notes)


if __name__ == "__main__":
    app.run(main)
