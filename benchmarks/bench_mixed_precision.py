"""What bfloat16 compute costs in quality: the same short training in float32 and in bfloat16, evaluated.

  python -m benchmarks.bench_mixed_precision [--steps=600] [--tunes=600] [--no_append]

The model is the melody VAE's CPU experiment (gin/experiments/melody_vae_embedded_cpu.gin: its model,
objective, optimizer and batch of 16) trained with the training core's step on real 2-bar chunks of
the embedded folk corpus: every third of the first 3 x `--tunes` corpus tunes, the last tenth of
those tunes held out for validation. Both runs see the same batches in the same order from the same
initial parameters (parameters and Adam state are float32 in both); only the model's compute `dtype`
differs. The table gives the validation metrics of each run (the task's `evaluate`, each model
evaluated in its own compute dtype) and the training time per step on this machine's CPU, where
bfloat16 is emulated: the time says nothing about an accelerator.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
import time

import gin
import jax
import numpy as np

EXPERIMENT = "gin/experiments/melody_vae_embedded_cpu.gin"
METRICS = ("elbo_loss", "reconstruction_loss", "kl_bits", "teacher_forced_accuracy", "free_running_accuracy",
           "chunk_accuracy")


def corpus_chunks(num_tunes: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) int32 [n, 32] chunks (all-rest chunks dropped), split by tune 90 / 10."""
    from smdiff.data import corpus, songs
    from smdiff.data.chunks import all_rest
    from smdiff.data.melody import MelodyRules

    tunes = corpus.corpus_tunes(max_tunes=3 * num_tunes)[::3][:num_tunes]
    train_ids = {tune.song_id for tune in tunes[:int(0.9 * len(tunes))]}
    chunks = {"train": [], "validation": []}
    tally = collections.Counter()
    for song in songs.iter_corpus_songs(tunes, MelodyRules(stream_bars=True), tally):
        split = "train" if song.song_id in train_ids else "validation"
        for melody in song.melodies:
            chunks[split].append(melody[~all_rest(melody)])
    return np.concatenate(chunks["train"]), np.concatenate(chunks["validation"])


def run(dtype: str, train_chunks: np.ndarray, validation: np.ndarray, steps: int, seed: int) -> dict:
    from smdiff import configurables  # noqa: F401  (registers the gin configurables)
    from smdiff.training import sharding
    from smdiff.training.train_state import create_train_state, make_eval_step, make_train_step

    gin.clear_config()
    gin.parse_config_files_and_bindings([EXPERIMENT], [])
    task = gin.query_parameter("train.task").scoped_configurable_fn()
    optimizer = gin.query_parameter("train.optimizer").scoped_configurable_fn()
    batch_size = gin.query_parameter("train.global_batch_size")
    task = dataclasses.replace(task, model=task.model.clone(config=dataclasses.replace(task.model.config, dtype=dtype)))
    mesh = sharding.make_mesh(jax.devices()[:1])
    order = np.random.default_rng(seed).permutation(len(train_chunks))

    def batch(i: int) -> dict:
        rows = np.take(order, np.arange(i * batch_size, (i + 1) * batch_size), mode="wrap")
        return sharding.global_batch({"events": train_chunks[rows]}, mesh)

    tx = optimizer.make()
    state = create_train_state(task, tx, jax.random.PRNGKey(seed), batch(0), mesh, use_ema=False)
    step = make_train_step(task, tx, optimizer.schedule(), 0.0, mesh)
    state, _ = step(state, batch(0))  # compile
    start = time.perf_counter()
    for i in range(1, steps):
        state, metrics = step(state, batch(i))
    jax.block_until_ready(metrics)
    seconds_per_step = (time.perf_counter() - start) / max(steps - 1, 1)
    evaluate = make_eval_step(task, mesh)
    usable = len(validation) // batch_size * batch_size
    sums = collections.Counter()
    for i, start_row in enumerate(range(0, usable, batch_size)):
        values = evaluate(state.params, sharding.global_batch({"events": validation[start_row:start_row + batch_size]},
                                                              mesh), jax.random.PRNGKey(10_000 + i))
        sums.update({name: float(values[name]) for name in METRICS})
    batches = usable // batch_size
    return {"metrics": {name: sums[name] / batches for name in METRICS}, "seconds_per_step": seconds_per_step,
            "validation_chunks": usable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps of each run")
    parser.add_argument("--tunes", type=int, default=600, help="corpus tunes read (every third of 3x this many)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_append", action="store_true", help="print only, do not touch RESULTS.md")
    args = parser.parse_args()
    train_chunks, validation = corpus_chunks(args.tunes)
    load_before = os.getloadavg()[0]
    results = {dtype: run(dtype, train_chunks, validation, args.steps, args.seed) for dtype in ("float32", "bfloat16")}
    lines = ["| compute dtype | " + " | ".join(METRICS) + " | CPU s/step |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for dtype, result in results.items():
        lines.append(f"| {dtype} | " + " | ".join(f"{result['metrics'][m]:.4f}" for m in METRICS)
                     + f" | {result['seconds_per_step']:.3f} |")
    lines.append("| bfloat16 - float32 | " + " | ".join(
        f"{results['bfloat16']['metrics'][m] - results['float32']['metrics'][m]:+.4f}" for m in METRICS) + " | - |")
    notes = (f"{args.steps} steps of batch 16 on {len(train_chunks)} training chunks; validation: "
             f"{results['float32']['validation_chunks']} chunks of held-out tunes. 1-minute load average "
             f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores.")
    from benchmarks import report

    report.publish("Mixed precision: bfloat16 vs float32 melody VAE (CPU experiment, short run)",
                   "python -m benchmarks.bench_mixed_precision " + " ".join(sys.argv[1:]), lines, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main()
