"""Scale-out on simulated CPU devices: `smdiff train` as 1, 2 and 4 processes, and the path layer's cost.

  .venv/bin/python -m benchmarks.bench_scaleout [--steps=60] [--global_batch=32] [--devices=4] [--no_append]

Training: the tiny melody VAE (gin/models/melody_vae_tiny.gin) on real chunks of tests/data/midi, through
the real entry point, with the same global batch over the same --devices simulated CPU devices split
over P = 1, 2, 4 processes (jax.distributed on localhost, gloo all-reduce between processes). Reported:
the loop's own steady steps/s (train/steps_per_sec at the last log, compile excluded), steps/s per
device, and where the wall time goes (start-up: imports, jax.distributed, data and the first compiled
step; steady steps; the rest: final checkpoint and shutdown). On a machine with fewer cores than
processes, the processes share cores, so this measures the multi-process overhead, not a speed-up.

Path layer: the JSON-lines metric writer through etils.epath against plain `open`, and a checkpoint
save + restore with the directory as an epath.Path against the plain string, on local disk.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_chunks(scratch: str) -> str:
    import tensorflow_datasets as tfds

    from tfds_builders import melody_common
    from tfds_builders.melody_chunks import MelodyChunks

    config = dataclasses.replace(melody_common.MIDI_DIR, name="midi_dir_bench", seed=1, workers=1)
    builder = MelodyChunks(config=config, data_dir=scratch)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.join(REPO, "tests", "data", "midi")))
    return scratch


def train_run(processes: int, devices: int, steps: int, global_batch: int, data_dir: str, workdir: str) -> dict:
    """Wall time and the loop's steps/s of one run of `processes` x devices/processes CPU devices."""
    bindings = ["train.train_data = @train/TfdsSource()", "train/TfdsSource.name = 'melody_chunks/midi_dir_bench'",
                f"train/TfdsSource.data_dir = '{data_dir}'", "train.optimizer = @OptimizerConfig()",
                f"train.global_batch_size = {global_batch}", f"train.num_train_steps = {steps}",
                f"train.log_every_steps = {steps // 2}", "train.eval_every_steps = 1000000",
                f"train.checkpoint_every_steps = {steps}"]
    command = [sys.executable, "-m", "smdiff.cli", "train", "--gin_file=gin/models/melody_vae_tiny.gin",
               f"--workdir={workdir}", *[f"--gin_bindings={binding}" for binding in bindings]]
    port = free_port()
    start = time.perf_counter()
    workers = []
    for index in range(processes):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO,
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices // processes}",
               "SMDIFF_EXPECTED_DEVICES": str(devices)}
        if processes > 1:
            env.update(SMDIFF_DISTRIBUTED="1", JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                       SMDIFF_NUM_PROCESSES=str(processes), SMDIFF_PROCESS_ID=str(index))
        workers.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True))
    errors = [worker.communicate()[1] for worker in workers]
    wall = time.perf_counter() - start
    if any(worker.returncode for worker in workers):
        raise RuntimeError(f"{processes}-process run failed: {errors[0][-3000:]}")
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    last = [record for record in records if "train/steps_per_sec" in record][-1]
    steady = last["train/steps_per_sec"]
    # The last log's rate covers the second half of the steps (the first half holds the compile).
    return {"wall": wall, "steps_per_sec": steady, "steady_seconds": steps / 2 / steady}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def path_layer_overhead(scratch: str, repeats: int = 5) -> list[str]:
    """Median seconds of 5000 metric lines and of a checkpoint save + restore, epath vs plain paths."""
    import jax.numpy as jnp
    import numpy as np
    import orbax.checkpoint as ocp
    from etils import epath

    from smdiff.training.writers import JsonLinesWriter

    def metric_lines(through_epath: bool, path: str) -> None:
        if through_epath:
            writer = JsonLinesWriter(path)
            for step in range(5000):
                writer.write_scalars(step, {"train/loss": 1.0 / (step + 1)})
            writer.close()
        else:
            with open(path, "a") as file:
                for step in range(5000):
                    file.write(json.dumps({"step": step, "train/loss": float(np.asarray(1.0 / (step + 1)))}) + "\n")

    state = {f"layer_{i}": jnp.full((256, 256), float(i)) for i in range(8)}  # 2 MiB of float32

    def checkpoint(through_epath: bool, directory: str) -> None:
        manager = ocp.CheckpointManager(epath.Path(directory) if through_epath else directory,
                                        options=ocp.CheckpointManagerOptions(create=True))
        manager.save(1, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
        manager.restore(1, args=ocp.args.StandardRestore(state))
        manager.close()

    rows = []
    for name, job in (("5000 metric lines", metric_lines), ("checkpoint save + restore (2 MiB)", checkpoint)):
        times = {True: [], False: []}
        for repeat in range(repeats):
            for through_epath in (False, True):
                target = os.path.join(scratch, f"{name[:4]}-{through_epath}-{repeat}")
                start = time.perf_counter()
                job(through_epath, target if job is checkpoint else target + ".jsonl")
                times[through_epath].append(time.perf_counter() - start)
        plain, layered = np.median(times[False]), np.median(times[True])
        rows.append(f"| {name} | {plain * 1e3:.1f} | {layered * 1e3:.1f} | {100 * (layered / plain - 1):+.0f}% |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--global_batch", type=int, default=32)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--no_append", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    sys.path.insert(0, REPO)
    from benchmarks import report

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = build_chunks(os.path.join(scratch, "tfds"))
        runs = {processes: train_run(processes, args.devices, args.steps, args.global_batch, data_dir,
                                     os.path.join(scratch, f"run-{processes}"))
                for processes in (1, 2, 4) if args.devices % processes == 0}
        path_rows = path_layer_overhead(scratch)
    load_after = os.getloadavg()
    base = runs[1]["steps_per_sec"]
    lines = [f"Training, {args.devices} simulated CPU devices, global batch {args.global_batch}, {args.steps} steps:", "",
             "| processes x devices | steps/s | steps/s per device | vs 1 process | wall s | start-up and save s | steady steps s |",
             "|---|---|---|---|---|---|---|"]
    for processes, run in runs.items():
        startup = run["wall"] - 2 * run["steady_seconds"]
        lines.append(f"| {processes} x {args.devices // processes} | {run['steps_per_sec']:.2f} | "
                     f"{run['steps_per_sec'] / args.devices:.3f} | {run['steps_per_sec'] / base:.2f} | "
                     f"{run['wall']:.1f} | {startup:.1f} | {2 * run['steady_seconds']:.1f} |")
    lines += ["", "Path layer on local disk (median of 5, ms):", "",
              "| operation | plain path | through etils.epath | difference |", "|---|---|---|---|", *path_rows]
    notes = (f"Load average (1 min) {load_before[0]:.1f} before and {load_after[0]:.1f} after, on {os.cpu_count()} "
             f"cores shared with other jobs: absolute rates are noisy. 'steady steps s' counts all steps at the last "
             f"logged rate; 'start-up and save s' is the rest of the wall time (imports, jax.distributed, data, "
             f"compile, final checkpoint, shutdown).")
    report.publish("Scale-out: processes and the path layer", "python -m benchmarks.bench_scaleout "
                   + " ".join(sys.argv[1:]), lines, notes, append=not args.no_append)


if __name__ == "__main__":
    main()
