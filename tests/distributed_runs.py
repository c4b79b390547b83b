"""Running `smdiff train` (or another program) as N processes x M simulated CPU devices (jax.distributed
on localhost, gloo collectives), on real melody chunks of tests/data/midi, for the scale-out tests.

The runs go through the real entry point (`python -m smdiff.cli train` with gin), as the launchers
start them; the model is the tiny melody VAE (gin/models/melody_vae_tiny.gin).
"""
import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from training_tiny_task import COMPILATION_CACHE_ENV

REPO = pathlib.Path(__file__).resolve().parent.parent
MIDI_DIR = REPO / "tests" / "data" / "midi"
DATASET = "melody_chunks/midi_dir_test"


def build_chunks(data_dir: pathlib.Path) -> str:
    """melody_chunks/midi_dir_test (with its ArrayRecord copy) in data_dir; returns data_dir."""
    import tensorflow_datasets as tfds

    from tfds_builders import melody_common
    from tfds_builders.melody_chunks import MelodyChunks

    config = dataclasses.replace(melody_common.MIDI_DIR, name="midi_dir_test", seed=1, workers=1)
    builder = MelodyChunks(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(MIDI_DIR)))
    return str(data_dir)


def train_flags(workdir, data_dir: str, num_train_steps: int, checkpoint_every: int = 2, *extra: str) -> list[str]:
    """`smdiff train` flags: the tiny melody VAE on the chunks, global batch 8, EMA on, no evaluation."""
    bindings = [
        "train.train_data = @train/TfdsSource()", f"train/TfdsSource.name = '{DATASET}'",
        f"train/TfdsSource.data_dir = '{data_dir}'", "train.optimizer = @OptimizerConfig()",
        "OptimizerConfig.learning_rate = 3e-3", "OptimizerConfig.decay_rate = 1.0",
        "train.global_batch_size = 8", f"train.num_train_steps = {num_train_steps}", "train.ema_decay = 0.9",
        "train.seed = 4", "train.log_every_steps = 2", "train.eval_every_steps = 100000",
        f"train.checkpoint_every_steps = {checkpoint_every}", "train.keep_checkpoints = 100", *extra]
    return ["--gin_file=gin/models/melody_vae_tiny.gin", f"--workdir={workdir}",
            *[f"--gin_bindings={binding}" for binding in bindings]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def process_env(devices_per_process: int, process_id: int | None = None, num_processes: int = 1,
                port: int | None = None) -> dict[str, str]:
    """The environment of one training process (what launch/local.sh --processes=N sets)."""
    env = {**os.environ, **COMPILATION_CACHE_ENV, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}",
           "SMDIFF_EXPECTED_DEVICES": str(devices_per_process * num_processes)}
    if num_processes > 1:
        env.update(SMDIFF_DISTRIBUTED="1", JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                   SMDIFF_NUM_PROCESSES=str(num_processes), SMDIFF_PROCESS_ID=str(process_id))
    return env


def start(flags: list[str], num_processes: int, devices_per_process: int, log_dir: pathlib.Path,
          name: str, program: tuple[str, ...] = ("-m", "smdiff.cli", "train")) -> list[subprocess.Popen]:
    """Starts the processes of one run of `python <program> <flags>`; each logs to log_dir/<name>-<i>.log."""
    port = free_port()
    workers = []
    for index in range(num_processes):
        log = open(log_dir / f"{name}-{index}.log", "w")
        workers.append(subprocess.Popen(
            [sys.executable, *program, *flags], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env=process_env(devices_per_process, index, num_processes, port)))
    return workers


def wait(workers: list[subprocess.Popen], log_dir: pathlib.Path, name: str, timeout: float = 400) -> list[int]:
    """Every process's exit code (kills all of them on a timeout)."""
    deadline = time.time() + timeout
    try:
        return [worker.wait(timeout=max(1.0, deadline - time.time())) for worker in workers]
    except subprocess.TimeoutExpired:
        for worker in workers:
            worker.kill()
        raise AssertionError(f"run {name} timed out: {logs(log_dir, name)}")


def run(flags: list[str], num_processes: int, devices_per_process: int, log_dir: pathlib.Path, name: str,
        program: tuple[str, ...] = ("-m", "smdiff.cli", "train")) -> None:
    """One run to completion; asserts every process exited 0."""
    codes = wait(start(flags, num_processes, devices_per_process, log_dir, name, program), log_dir, name)
    assert codes == [0] * num_processes, logs(log_dir, name)


def logs(log_dir: pathlib.Path, name: str) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(log_dir.glob(f"{name}-*.log")))


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
    """The committed checkpoint steps of a workdir (those with Orbax's commit marker)."""
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(name) for name in os.listdir(directory)
                  if name.isdigit() and (directory / name / "commit_success.txt").exists())


def wait_for_step(workdir: pathlib.Path, step: int, workers: list[subprocess.Popen], log_dir, name,
                  timeout: float = 400) -> None:
    """Blocks until a checkpoint of `step` or later is on disk."""
    deadline = time.time() + timeout
    while not any(saved >= step for saved in checkpoint_steps(workdir)):
        assert all(worker.poll() is None for worker in workers), logs(log_dir, name)
        assert time.time() < deadline, f"no checkpoint {step} in time: {logs(log_dir, name)}"
        time.sleep(0.1)


def kill_all(workers: list[subprocess.Popen], sig: int = signal.SIGKILL) -> None:
    for worker in workers:
        worker.send_signal(sig)
    for worker in workers:
        worker.wait()


def final_params(workdir: pathlib.Path, step: int | None = None) -> dict[str, np.ndarray]:
    """Params and EMA params of the run's checkpoint `step` (default latest), flattened by path."""
    import jax
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(str(workdir / "checkpoints"),
                               item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                                              "data": ocp.JsonCheckpointHandler()}) as manager:
        step = manager.latest_step() if step is None else step
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                manager.item_metadata(step)["state"])
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(restore_args=as_numpy)))["state"]
    leaves = {}
    for key in ("params", "ema_params", "step"):
        for path, leaf in jax.tree_util.tree_leaves_with_path(restored[key]):
            leaves[key + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return leaves


def assert_same_params(expected: dict, actual: dict, rtol: float = 2e-5, atol: float = 2e-6) -> None:
    assert expected.keys() == actual.keys() and len(expected) > 2
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


def wait_for_step_logged(workdir: pathlib.Path, step: int, workers, log_dir, name, timeout: float = 400) -> None:
    """Blocks until metrics.jsonl has a record of `step` or later."""
    path = workdir / "metrics.jsonl"
    deadline = time.time() + timeout
    while not (path.exists() and any(json.loads(line).get("step", -1) >= step
                                     for line in path.read_text().splitlines() if line.strip())):
        assert all(worker.poll() is None for worker in workers), logs(log_dir, name)
        assert time.time() < deadline, f"step {step} not logged in time: {logs(log_dir, name)}"
        time.sleep(0.1)


TIMING = ("seconds", "samples_per_second", "process_index", "local_devices")  # what may differ in a chunk marker


def sampling_contents(out: pathlib.Path) -> dict:
    """{relative path: bytes} of every file a sampling run wrote; a DONE.json marker as its JSON without
    who made the chunk and how fast (topology.json and logs left out)."""
    contents = {}
    for path in sorted(out.rglob("*")):
        if path.is_dir() or path.name == "topology.json" or path.suffix == ".log":
            continue
        relative = str(path.relative_to(out))
        if path.name == "DONE.json":
            contents[relative] = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING}
        else:
            contents[relative] = path.read_bytes()
    return contents


def chunk_markers(out: pathlib.Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in out.rglob("DONE.json")] if out.exists() else []


def assert_every_process_made_chunks(out: pathlib.Path, processes: int, devices: int) -> None:
    """topology.json has processes x devices, every process made chunks, and each chunk's marker names
    all the local devices of the process that made it."""
    topology = json.loads((out / "topology.json").read_text())
    assert (topology["process_count"], topology["device_count"]) == (processes, processes * devices)
    by_process = {}
    for device in topology["devices"]:
        by_process.setdefault(device["process_index"], []).append(device["id"])
    markers = chunk_markers(out)
    assert {marker["process_index"] for marker in markers} == set(range(processes))
    assert all(sorted(marker["local_devices"]) == sorted(by_process[marker["process_index"]]) for marker in markers)
