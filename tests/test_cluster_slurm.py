"""`launch/slurm.sh` submitted to a real one-node SLURM (scripts/cluster/start_slurm.sh; `make test-cluster`).

Two tasks x 2 CPU devices train the tiny melody VAE on real chunks of tests/data/midi through the job
script the launcher writes (one task per device group, jax's own SLURM detection, a coordinator port free
on the node, SMDIFF_EXPECTED_DEVICES) and must end with the parameters of one process with 4 devices;
two tasks x 2 CPU devices run `smdiff sample` and must write the bytes of one process with one device.
Skips, with the reason, where SLURM cannot run (not root, no apt-get, daemons that do not start).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import distributed_runs as runs

pytestmark = pytest.mark.cluster

START = runs.REPO / "scripts" / "cluster" / "start_slurm.sh"
STOP = runs.REPO / "scripts" / "cluster" / "stop_slurm.sh"


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """The environment that reaches the cluster (SLURM_CONF): a running one if SLURM_CONF answers, else
    one started for these tests and stopped after them."""
    if os.environ.get("SLURM_CONF") and shutil.which("sinfo") and subprocess.run(
            ["sinfo"], capture_output=True, timeout=30).returncode == 0:
        yield dict(os.environ)
        return
    state_dir = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(START), str(state_dir)], capture_output=True, text=True, timeout=600)
    if started.returncode == 3:
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield {**os.environ, "SLURM_CONF": str(state_dir / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(STOP), str(state_dir)], timeout=60)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return runs.build_chunks(tmp_path_factory.mktemp("tfds"))


def test_slurm_two_tasks_train_like_one_process(slurm_env, data_dir, tmp_path):
    workdir = tmp_path / "slurm_run"
    env = {**slurm_env, **runs.COMPILATION_CACHE_ENV, "PYTHON": sys.executable}
    for name in ("XLA_FLAGS", "JAX_PLATFORMS", "SMDIFF_DISTRIBUTED", "SMDIFF_EXPECTED_DEVICES"):
        env.pop(name, None)  # the job script sets them
    submitted = subprocess.run(
        [str(runs.REPO / "launch" / "slurm.sh"), "--nodes=1", "--cpu_tasks_per_node=2", "--cpu_devices_per_task=2",
         "--cpus_per_task=1", f"--log_dir={tmp_path}", "--job_name=smdiff-test", "--sbatch_arg=--wait", "train",
         "--", *runs.train_flags(workdir, data_dir, 6)],
        env=env, capture_output=True, text=True, timeout=600)
    job_logs = "\n".join(path.read_text() for path in tmp_path.glob("smdiff-test-*.log"))
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr + job_logs[-6000:]
    runs.run(runs.train_flags(tmp_path / "one", data_dir, 6), 1, 4, tmp_path, "one")
    runs.assert_same_params(runs.final_params(tmp_path / "one"), runs.final_params(workdir))
    topology = json.loads((workdir / "topology.json").read_text())
    assert (topology["process_count"], topology["device_count"], topology["expected_devices"]) == (2, 4, 4)
    assert sorted(device["process_index"] for device in topology["devices"]) == [0, 0, 1, 1]
    # Both tasks built the 4-device mesh and fed their rows of every batch (library records go to the job log).
    train_log = (workdir / "train.log").read_text()
    assert train_log.count("global batch 8 on 4 devices in 2 process(es)") == 2, train_log[-6000:]


@pytest.fixture(scope="module")
def sampling_inputs(data_dir, tmp_path_factory):
    """(vae_workdir, data_dir): a tiny melody VAE trained 2 steps on the chunks, and melody_latents/embedded
    (folk-tune windows of the embedded corpus, 64 per split) encoded by it, in data_dir."""
    import tensorflow_datasets as tfds

    import tfds_builders  # noqa: F401  (registers the builders)

    logs = tmp_path_factory.mktemp("vae")
    vae = logs / "vae"
    runs.run(runs.train_flags(vae, data_dir, 2), 1, 1, logs, "vae")
    limited = tfds.download.DownloadConfig(max_examples_per_split=64)
    tfds.builder("melody_windows/embedded", data_dir=data_dir).download_and_prepare(download_config=limited)
    tfds.builder("melody_latents/embedded", data_dir=data_dir, vae_workdir=str(vae)).download_and_prepare()
    return str(vae), data_dir


def test_slurm_two_tasks_sample_the_bytes_of_one_process(slurm_env, sampling_inputs, tmp_path):
    """`smdiff sample` through launch/slurm.sh as 2 tasks x 2 CPU devices equals one process with one device;
    every task made its own chunks (2 row groups each: both of its devices) and topology.json has all 4."""
    vae, data_dir = sampling_inputs
    flags = ["--generator=prior", "--mode=unconditional", "--mode=infilling", f"--vae_workdir={vae}",
             "--latents=melody_latents/embedded", f"--data_dir={data_dir}", "--num_samples=32", "--chunk_size=16"]
    env = {**slurm_env, **runs.COMPILATION_CACHE_ENV, "PYTHON": sys.executable, "SMDIFF_ROWS_PER_STEP": "8"}
    for name in ("XLA_FLAGS", "JAX_PLATFORMS", "SMDIFF_DISTRIBUTED", "SMDIFF_EXPECTED_DEVICES"):
        env.pop(name, None)  # the job script sets them
    out = tmp_path / "slurm_samples"
    submitted = subprocess.run(
        [str(runs.REPO / "launch" / "slurm.sh"), "--nodes=1", "--cpu_tasks_per_node=2", "--cpu_devices_per_task=2",
         "--cpus_per_task=1", f"--log_dir={tmp_path}", "--job_name=smdiff-sample", "--sbatch_arg=--wait", "sample",
         "--", *flags, f"--output_dir={out}"], env=env, capture_output=True, text=True, timeout=900)
    job_logs = "\n".join(path.read_text() for path in tmp_path.glob("smdiff-sample-*.log"))
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr + job_logs[-6000:]
    os.environ["SMDIFF_ROWS_PER_STEP"] = "8"  # for the one-process run below (runs.process_env copies os.environ)
    try:
        runs.run([*flags, f"--output_dir={tmp_path / 'one'}"], 1, 1, tmp_path, "one", ("-m", "smdiff.cli", "sample"))
    finally:
        del os.environ["SMDIFF_ROWS_PER_STEP"]
    assert runs.sampling_contents(out) == runs.sampling_contents(tmp_path / "one")
    assert len(runs.chunk_markers(out)) == 4  # 2 modes x 2 chunks
    runs.assert_every_process_made_chunks(out, 2, 2)
    topology = json.loads((out / "topology.json").read_text())
    assert topology["expected_devices"] == 4
