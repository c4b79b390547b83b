"""Latent-build encoding: windows/s of the melody_latents encoding pass on 1 and 2 simulated CPU devices.

  python -m benchmarks.bench_latent_encoding [--model_gin=gin/models/melody_vae_cpu.gin] [--tunes=300]
      [--batch_size=256] [--devices=1,2] [--repeats=3] [--no_append]

The windows are real: melody_windows of the first --tunes tunes of the embedded corpus (the music21 folk
collections), built by the real builder and read back through TFDS as `smdiff build melody_latents` reads
them. Each device count runs in its own process (XLA's simulated devices are fixed at start-up): it
encodes the train split with `latent_codec.encode_windows` (what the build runs, twice over train and
once over the other splits) once to compile every batch shape, then --repeats timed passes; the best
pass is reported. The VAE is the --model_gin architecture freshly initialised (the encoder's cost does
not depend on its weights). On a machine with fewer cores than devices, the devices share cores. The
last column is the host's share alone (reading the windows through TFDS and computing their seeds),
which `encode_windows` overlaps with the encoding of the previous batch.
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
WINDOWS = "melody_windows/embedded_bench"


def build_windows(data_dir: str, tunes: int) -> int:
    """melody_windows/embedded_bench (the first `tunes` tunes) in data_dir; returns its train windows."""
    from tfds_builders import melody_common
    from tfds_builders.melody_windows import MelodyWindows

    config = dataclasses.replace(melody_common.EMBEDDED, name="embedded_bench", max_tunes=tunes, workers=1)
    builder = MelodyWindows(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    return builder.info.splits["train"].num_examples


def encode_rate(model_gin: str, data_dir: str, batch_size: int, repeats: int) -> dict:
    """(in a process with its XLA device count set) best windows/s of encoding the train split."""
    import gin
    import jax
    import jax.numpy as jnp
    import tensorflow_datasets as tfds

    import tfds_builders.melody_windows  # noqa: F401  (registers the builder)
    from smdiff import configurables  # noqa: F401  (registers the model's configurables)
    from smdiff.codec import latent_codec

    gin.add_config_file_search_path(REPO)
    gin.parse_config_file(model_gin)
    model = gin.query_parameter("train.task").scoped_configurable_fn().model
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32), jnp.int32), jax.random.PRNGKey(1))["params"]
    encoder = latent_codec.WindowEncoder(model, params)
    windows = tfds.builder(WINDOWS, data_dir=data_dir)

    def one_pass() -> tuple[int, float]:
        start = time.perf_counter()
        count = 0
        examples = tfds.as_numpy(windows.as_dataset(split="train", shuffle_files=False))
        for batch in latent_codec.encode_windows(encoder, examples, batch_size, skipped={}):
            count += len(batch.song_id)
        return count, time.perf_counter() - start

    def host_pass() -> float:
        """windows/s of the host's share alone: reading the windows and naming their chunks (the seeds)."""
        start = time.perf_counter()
        count = 0
        for window in tfds.as_numpy(windows.as_dataset(split="train", shuffle_files=False)):
            song_id, start_chunk = window["song_id"].decode(), int(window["start_chunk"])
            latent_codec.window_seed(song_id, start_chunk, window["events"])
            latent_codec.chunk_seeds(song_id, start_chunk, window["events"])
            count += 1
        return count / (time.perf_counter() - start)

    one_pass()  # compiles the full and the last batch's shapes
    timed = [one_pass() for _ in range(repeats)]
    return {"devices": jax.device_count(), "windows": timed[0][0],
            "rates": [count / seconds for count, seconds in timed], "host_rate": host_pass()}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_gin", default="gin/models/melody_vae_cpu.gin")
    parser.add_argument("--tunes", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--devices", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no_append", action="store_true")
    parser.add_argument("--worker_data_dir", help=argparse.SUPPRESS)  # set for the per-device-count process
    args = parser.parse_args(argv)
    sys.path.insert(0, REPO)
    if args.worker_data_dir:
        print(json.dumps(encode_rate(args.model_gin, args.worker_data_dir, args.batch_size, args.repeats)))
        return

    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    from benchmarks import report

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        train_windows = build_windows(scratch, args.tunes)
        for devices in [int(count) for count in args.devices.split(",")]:
            env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO,
                   "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_latent_encoding", *argv,
                                  f"--worker_data_dir={scratch}"], cwd=REPO, env=env, check=True,
                                 capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    load = os.getloadavg()[0]
    lines = ["| model | windows (train split) | batch | devices | windows/s (best) | vs 1 device | host share alone (windows/s) |",
             "|---|---|---|---|---|---|---|"]
    base = max(results[0]["rates"])
    for result in results:
        best = max(result["rates"])
        lines.append(f"| {args.model_gin} | {result['windows']} | {args.batch_size} | {result['devices']} | "
                     f"{best:.0f} | {best / base:.2f}x | {result['host_rate']:.0f} |")
    notes = (f"Real windows: melody_windows of the first {args.tunes} embedded-corpus tunes (k=4), "
             f"{train_windows} in the train split, read through TFDS. Best of {args.repeats} passes after a "
             f"compiling pass (all passes: " + "; ".join(
                 f"{r['devices']} device(s): " + ", ".join(f"{rate:.0f}" for rate in r["rates"]) for r in results)
             + f" windows/s). 1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores "
             "(other jobs share this machine).")
    command = "python -m benchmarks.bench_latent_encoding " + " ".join(argv)
    report.publish("Latent-build encoding (bench_latent_encoding)", command.strip(), lines, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
