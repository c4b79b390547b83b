"""Scale-out of sampling on simulated CPU devices: 1, 2 and 4 processes sharing the same devices.

  .venv/bin/python -m benchmarks.bench_scaleout_sampling [--samples=256] [--chunk=32] [--ddim_steps=20]
      [--devices=4] [--no_append]

Each run is the multi-process sampling of tests/sampling_processes.py (what `smdiff sample`'s main does:
jax.distributed on localhost, each process making its own chunks with `smdiff.sampling.store.run` on all
of its devices): a DDIM sampler of a small TransformerDDPM over real folk-tune latents, decoded by a small
melody VAE, in two modes (unconditional, infilling), --samples each. The --devices simulated CPU devices
are split over P = 1, 2, 4 processes, SMDIFF_ROWS_PER_STEP = chunk / (devices per process) rows per device
step, so every device of a process gets one row group of each chunk. Reported per run: samples/s of the
sampling itself (all samples but each process's first chunk, which holds the compile, over the longest
per-process time those chunks took, from the chunks' markers), that per device, and the wall time with
start-up (imports, jax.distributed, data, compile). On a machine with fewer cores than devices, the
devices share cores: this measures the multi-process overhead, not a speed-up.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def sampling_run(processes: int, devices: int, samples: int, chunk: int, ddim_steps: int, out: pathlib.Path) -> dict:
    """Wall time and steady samples/s of one run of `processes` x devices/processes CPU devices."""
    sys.path.insert(0, str(REPO / "tests"))
    import distributed_runs

    port = distributed_runs.free_port()
    local_devices = devices // processes
    start = time.perf_counter()
    workers = []
    for index in range(processes):
        env = {**distributed_runs.process_env(local_devices, index, processes, port),
               "SMDIFF_ROWS_PER_STEP": str(max(1, chunk // local_devices))}
        workers.append(subprocess.Popen(
            [sys.executable, "tests/sampling_processes.py", "sample", str(out), str(samples), str(chunk),
             str(ddim_steps)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [worker.communicate()[1] for worker in workers]
    wall = time.perf_counter() - start
    if any(worker.returncode for worker in workers):
        raise RuntimeError(f"{processes}-process run failed: {errors[0][-3000:]}")
    markers = [json.loads(path.read_text()) for path in out.rglob("DONE.json")]
    steady_seconds, steady_samples = {}, 0
    for process in range(processes):
        mine = sorted((m for m in markers if m["process_index"] == process), key=lambda m: (m["mode"], m["index"]))
        steady = mine[1:]  # the first chunk of a process holds its compile
        steady_seconds[process] = sum(m["seconds"] for m in steady)
        steady_samples += sum(m["size"] for m in steady)
    rate = steady_samples / max(steady_seconds.values())
    return {"wall": wall, "samples_per_sec": rate, "chunks": len(markers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--ddim_steps", type=int, default=20)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--no_append", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from benchmarks import report

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        runs = {processes: sampling_run(processes, args.devices, args.samples, args.chunk, args.ddim_steps,
                                        pathlib.Path(scratch) / f"run-{processes}")
                for processes in (1, 2, 4) if args.devices % processes == 0}
    load_after = os.getloadavg()
    base = runs[1]["samples_per_sec"]
    lines = [f"Sampling, {args.devices} simulated CPU devices, 2 modes x {args.samples} samples in chunks of "
             f"{args.chunk}, DDIM {args.ddim_steps} steps:", "",
             "| processes x devices | samples/s | samples/s per device | vs 1 process | wall s |", "|---|---|---|---|---|"]
    for processes, run in runs.items():
        lines.append(f"| {processes} x {args.devices // processes} | {run['samples_per_sec']:.1f} | "
                     f"{run['samples_per_sec'] / args.devices:.2f} | {run['samples_per_sec'] / base:.2f} | "
                     f"{run['wall']:.1f} |")
    notes = (f"Load average (1 min) {load_before[0]:.1f} before and {load_after[0]:.1f} after, on {os.cpu_count()} "
             f"cores shared with other jobs: absolute rates are noisy. samples/s leaves out each process's first "
             f"chunk (compile); the wall time includes start-up.")
    report.publish("Scale-out: sampling across processes", "python -m benchmarks.bench_scaleout_sampling "
                   + " ".join(sys.argv[1:]), lines, notes, append=not args.no_append)


if __name__ == "__main__":
    main()
