"""Every throughput figure at paper size on whatever accelerator is present, in one run and one file.

    PYTHONPATH=. python -m benchmarks.accelerator_check --out=accelerator_check.md [--size=paper|tiny]

(`benchmarks/accelerator_check.sh` runs this; append the file it writes to benchmarks/RESULTS.md.)

Runs from the source tree with only jax, flax, optax and numpy: no TensorFlow, TFDS, gin or music
library is imported (tests/test_accelerator_check.py runs the tiny size with TensorFlow blocked). The
models are the gin files' paper configurations (gin/models/*_paper.gin, *_big.gin; the same test
checks that they still agree) fed arrays of the paper's shapes: a throughput check, not a quality one.

Figures:
  - training steps/s of the training core's own step (`make_train_step`: Adam, clipping, the batch
    sharded over every local device) at each paper batch, with MFU: XLA's FLOP count of the compiled
    step x steps/s / the device's peak (`smdiff.training.throughput.PEAK_TFLOPS`, or --peak_tflops);
  - ancestral (DDPM, 1000 steps) sampling of the TransformerDDPM: seconds per call and samples/s for
    each batch size in --sample_batches (one compiled `lax.scan` per call); goal: 1000 samples < 10 s;
  - DDIM (50 steps) and TransformerMDN sampling at batch 1000.
Each timed loop runs after a compiling call, until it has run --min_seconds (and at least 3 steps).
A section that would start after --budget_s is listed as skipped, so the run ends within the budget
plus one section.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from smdiff.models.melody_vae import MelodyVAE, MelodyVAEConfig
from smdiff.models.params import count_params
from smdiff.models.transformer_ddpm import TransformerDDPM, TransformerDDPMConfig
from smdiff.models.transformer_mdn import TransformerMDN, TransformerMDNConfig
from smdiff.models.unet import UNet, UNetConfig
from smdiff.tasks.binomial import BinomialTask
from smdiff.tasks.latent_diffusion import LatentDiffusionTask
from smdiff.tasks.mdn import MDNTask
from smdiff.tasks.melody_vae import MelodyVAETask
from smdiff.training import sharding, throughput
from smdiff.training.optimizer import OptimizerConfig
from smdiff.training.train_state import create_train_state, make_train_step

K, D = 32, 42  # the paper's latent sequences: 32 latents of 42 active dims
ROLL_SHAPE = (64, 56)  # the chorale piano rolls' [time, pitch] (4 bars at 4 steps per quarter)
VAE_STEPS = 32  # a 2-bar chunk of 16th-note events
GOAL_TRAIN_STEPS_PER_S = 210.0  # 10x the paper's V100 rate for the TransformerDDPM at batch 64
GOAL_SAMPLE_SECONDS = 10.0  # 1000 samples x 1000 ancestral steps


@dataclasses.dataclass(frozen=True)
class Size:
    """The models and batches of one run: the papers' (what the check is for) or tiny (its CPU test)."""

    ddpm: TransformerDDPMConfig
    mdn: TransformerMDNConfig
    vae: MelodyVAEConfig
    unet: UNetConfig
    batches: dict[str, int]  # training batch per model (the gin/runs/*_paper.gin global batches)
    diffusion_steps: int  # N of the ancestral sampler (the paper's 1000)
    ddim_steps: int


SIZES = {
    "paper": Size(
        ddpm=TransformerDDPMConfig(),  # the dataclass defaults are the paper's; the test compares with gin
        mdn=TransformerMDNConfig(),
        vae=MelodyVAEConfig(),
        unet=UNetConfig(),
        batches={"TransformerDDPM": 64, "TransformerMDN": 128, "MusicVAE big": 512, "binomial U-Net": 200},
        diffusion_steps=1000,
        ddim_steps=50,
    ),
    "tiny": Size(
        ddpm=TransformerDDPMConfig(d_model=16, num_layers=1, num_heads=2, mlp_dim=32, res_width=32,
                                   film_hidden=16, noise_encoding_dim=16),
        mdn=TransformerMDNConfig(d_model=16, num_layers=1, num_heads=2, mlp_dim=32, residual_width=32,
                                 num_mixtures=4),
        vae=MelodyVAEConfig(z_size=8, encoder_size=16, decoder_sizes=(16,)),
        unet=UNetConfig(base_width=8, width_multipliers=(1, 2), blocks_per_level=1, attention_heads=1,
                        attention_head_width=8),
        batches={"TransformerDDPM": 4, "TransformerMDN": 4, "MusicVAE big": 4, "binomial U-Net": 2},
        diffusion_steps=5,
        ddim_steps=2,
    ),
}


def fixed_array(shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """A deterministic float32 array in [low, high] (timing does not depend on the values)."""
    grid = np.sin(0.37 * np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape)
    return (low + (high - low) * (grid + 1) / 2).astype(np.float32)


def with_dtype(size: Size, dtype: str) -> Size:
    """The same models computing in `dtype` (parameters stay float32)."""
    return dataclasses.replace(size, **{name: dataclasses.replace(getattr(size, name), dtype=dtype)
                                        for name in ("ddpm", "mdn", "vae", "unet")})


def training_cases(size: Size) -> list[tuple[str, object, dict, OptimizerConfig]]:
    """(name, task, one global batch, optimizer) per model, at the paper's shapes and batches."""
    b = size.batches
    events = (np.arange(b["MusicVAE big"] * VAE_STEPS).reshape(-1, VAE_STEPS) * 7 % 90).astype(np.int32)
    return [
        ("TransformerDDPM", LatentDiffusionTask(TransformerDDPM(size.ddpm)),
         {"latents": fixed_array((b["TransformerDDPM"], K, D))}, OptimizerConfig()),
        ("TransformerMDN", MDNTask(TransformerMDN(size.mdn)),
         {"latents": fixed_array((b["TransformerMDN"], K, D))}, OptimizerConfig()),
        ("MusicVAE big", MelodyVAETask(MelodyVAE(size.vae)), {"events": events},
         OptimizerConfig(learning_rate=1e-3, decay_steps=1, decay_rate=0.9999, staircase=False,
                         min_learning_rate=1e-5)),
        ("binomial U-Net", BinomialTask(UNet(size.unet), density=0.1),
         {"roll": (fixed_array((b["binomial U-Net"], *ROLL_SHAPE)) > 0.8).astype(np.float32)},
         OptimizerConfig(learning_rate=5e-5, decay_rate=1.0, clip_norm=0.0)),
    ]


def timed_rate(call: Callable[[], object], min_seconds: float) -> float:
    """Calls per second of `call` (already compiled), over at least 3 calls and `min_seconds`.

    Calls are dispatched in doubling groups with one sync per group, so host syncs do not serialise
    the device's work."""
    calls, seconds, group = 0, 0.0, 3
    while calls < 3 or seconds < min_seconds:
        start = time.perf_counter()
        for _ in range(group):
            result = call()
        jax.block_until_ready(result)
        seconds += time.perf_counter() - start
        calls += group
        group *= 2
    return calls / seconds


def check_training(name: str, dtype: str, task, batch: dict, optimizer: OptimizerConfig, peak: float | None,
                   min_seconds: float, goal: bool) -> str:
    mesh = sharding.make_mesh()
    batch = sharding.global_batch(batch, mesh)
    tx = optimizer.make()
    state = create_train_state(task, tx, jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    params = count_params(state.params)
    start = time.perf_counter()
    step = make_train_step(task, tx, optimizer.schedule(), 0.0, mesh).lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    flops = throughput.compiled_flops(step)
    holder = {"state": state}

    def one_step():
        holder["state"], metrics = step(holder["state"], batch)
        return metrics

    jax.block_until_ready(one_step())
    rate = timed_rate(one_step, min_seconds)
    batch_size = len(next(iter(batch.values())))
    mfu = f"{100 * flops * rate / peak:.1f}%" if flops and peak else "-"
    verdict = ""
    if goal:
        verdict = f"{'met' if rate >= GOAL_TRAIN_STEPS_PER_S else 'not met'} (>= {GOAL_TRAIN_STEPS_PER_S:.0f})"
    gflops = f"{flops / 1e9:.2f}" if flops else "-"
    return (f"| {name} | {dtype} | {params / 1e6:.2f}M | {batch_size} | {rate:.2f} | {rate * batch_size:.0f} | "
            f"{gflops} | {mfu} | {compile_seconds:.1f} | {verdict} |")


def check_sampling(label: str, dtype: str, sample: Callable[[jax.Array], jax.Array], batch: int, flops_per_sample_call: float | None,
                   peak: float | None, min_seconds: float, goal: bool) -> str:
    start = time.perf_counter()
    jax.block_until_ready(sample(jax.random.PRNGKey(0)))
    first = time.perf_counter() - start
    keys = iter(range(1, 1_000_000))
    rate = timed_rate(lambda: sample(jax.random.PRNGKey(next(keys))), min_seconds)
    seconds = 1 / rate
    mfu = f"{100 * flops_per_sample_call / seconds / peak:.1f}%" if flops_per_sample_call and peak else "-"
    verdict = ""
    if goal:
        verdict = f"{'met' if seconds < GOAL_SAMPLE_SECONDS else 'not met'} (< {GOAL_SAMPLE_SECONDS:.0f} s)"
    return f"| {label} | {dtype} | {batch} | {seconds:.3f} | {batch / seconds:.1f} | {first:.1f} | {mfu} | {verdict} |"


def sampling_checks(size: Size, sample_batches: list[int], peak: float | None, min_seconds: float):
    """(label, row builder) for the DDPM batch sweep, DDIM and the MDN, each run under the budget."""
    dtype = size.ddpm.dtype
    from smdiff.generators.diffusion import DiffusionGenerator
    from smdiff.generators.mdn import MDNGenerator

    task = LatentDiffusionTask(TransformerDDPM(size.ddpm), num_steps=size.diffusion_steps,
                               probe_steps=(1,))  # the probe is not timed; tiny N has no step 10
    params = task.init(jax.random.PRNGKey(0), {"latents": jnp.asarray(fixed_array((2, K, D)))})
    mdn = TransformerMDN(size.mdn)
    mdn_params = MDNTask(mdn).init(jax.random.PRNGKey(0), {"latents": jnp.asarray(fixed_array((2, K, D)))})
    largest = max(sample_batches)

    def denoiser_flops(batch: int) -> float | None:
        call = jax.jit(lambda p, x, level: task.model.apply({"params": p}, x, level))
        x = jnp.asarray(fixed_array((batch, K, D)))
        return throughput.compiled_flops(call.lower(params, x, jnp.ones(batch)).compile())

    checks = []
    for batch in sample_batches:
        def ddpm(batch=batch):
            generator = DiffusionGenerator(task, params, window_chunks=K)
            flops = denoiser_flops(batch)
            return check_sampling(f"DDPM ancestral, {size.diffusion_steps} steps", dtype,
                                  lambda rng: generator.sample(rng, batch), batch,
                                  flops and flops * size.diffusion_steps, peak, min_seconds,
                                  goal=batch == 1000 and size.diffusion_steps == 1000)
        checks.append((f"DDPM batch {batch} ({dtype})", ddpm))

    def ddim():
        generator = DiffusionGenerator(task, params, window_chunks=K, sampler="ddim", num_sampling_steps=size.ddim_steps)
        flops = denoiser_flops(largest)
        return check_sampling(f"DDIM, {size.ddim_steps} steps", dtype, lambda rng: generator.sample(rng, largest), largest,
                              flops and flops * size.ddim_steps, peak, min_seconds, goal=False)

    def mdn_sampling():
        generator = MDNGenerator(mdn, mdn_params, window_chunks=K)
        return check_sampling(f"TransformerMDN, {K} positions (KV cache)", dtype, lambda rng: generator.sample(rng, largest),
                              largest, None, peak, min_seconds, goal=False)

    return checks + [(f"DDIM ({dtype})", ddim), (f"MDN sampling ({dtype})", mdn_sampling)]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument("--out", default="accelerator_check.md", help="markdown file written (overwritten)")
    parser.add_argument("--sample_batches", default="64,256,1000,4000", help="DDPM sampling batch sizes")
    parser.add_argument("--min_seconds", type=float, default=2.0, help="least time of each timed loop")
    parser.add_argument("--budget_s", type=float, default=420.0, help="start no section after this many seconds")
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="compute dtypes to time, in this order (parameters are always float32)")
    parser.add_argument("--peak_tflops", type=float, default=0.0,
                        help="per-device peak TFLOP/s for MFU (default: the table for known devices)")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    started = time.perf_counter()
    peak = throughput.peak_flops(jax.devices()[0].device_kind, args.peak_tflops)

    # Sections in order of importance, so that the budget cuts the least important: the paper
    # TransformerDDPM's training and 1000-sample call first, then the other models, then the sweeps.
    dtypes = args.dtypes.split(",")
    batches = [int(b) for b in args.sample_batches.split(",")]
    trainings = {dtype: training_cases(with_dtype(size, dtype)) for dtype in dtypes}
    samplings = {dtype: sampling_checks(with_dtype(size, dtype), batches, peak, args.min_seconds) for dtype in dtypes}

    def training_section(dtype: str, index: int):
        name, task, batch, optimizer = trainings[dtype][index]
        goal = name == "TransformerDDPM" and args.size == "paper"
        return f"training {name} ({dtype})", "train", lambda: check_training(
            name, dtype, task, batch, optimizer, peak, args.min_seconds, goal)

    first_sample = batches.index(1000) if 1000 in batches else len(batches) - 1
    sections = [training_section(dtype, 0) for dtype in dtypes]
    sections += [(samplings[dtype][first_sample][0], "sample", samplings[dtype][first_sample][1]) for dtype in dtypes]
    sections += [training_section(dtype, i) for i in range(1, len(trainings[dtypes[0]])) for dtype in dtypes]
    sections += [(label, "sample", check) for dtype in dtypes
                 for i, (label, check) in enumerate(samplings[dtype]) if i != first_sample]
    rows: dict[str, list[str]] = {"train": [], "sample": []}
    skipped = []
    for label, table, check in sections:
        if time.perf_counter() - started >= args.budget_s:
            skipped.append(label)
            continue
        rows[table].append(check())
        print(rows[table][-1], flush=True)
    train_rows, sample_rows = rows["train"], rows["sample"]

    peak_text = f"{peak / 1e12:.0f} TFLOP/s per device" if peak else "unknown (pass --peak_tflops): no MFU"
    lines = [
        f"## Accelerator check ({args.size} size, {datetime.date.today().isoformat()})", "",
        f"- machine: {report.machine_description()}",
        f"- command: `PYTHONPATH=. python -m benchmarks.accelerator_check {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- MFU against {peak_text}; float32 parameters, compute in the dtype column; wall time {time.perf_counter() - started:.0f} s",
        "",
        "| training | compute dtype | params | global batch | steps/s | examples/s | GFLOP/step (per device) | MFU | compile (s) | goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *train_rows, "",
        "| sampling | compute dtype | batch | s per call | samples/s | first call (s) | MFU | goal |",
        "|---|---|---|---|---|---|---|---|",
        *sample_rows, "",
    ]
    if skipped:
        lines += [f"Skipped (past the {args.budget_s:.0f} s budget): {', '.join(skipped)}.", ""]
    text = "\n".join(lines)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
