"""The path layer with a workdir in a bucket: `gcp-storage-emulator` (the GCS JSON API on localhost).

Orbax writes arrays through TensorStore (pointed at the emulator with TENSORSTORE_GCS_HTTP_URL) and
every other file through etils.epath, which reaches gs:// through gcsfs (STORAGE_EMULATOR_HOST) when
EPATH_USE_TF=false. TensorFlow's own GCS filesystem (tf.io.gfile, which epath uses by default when
TensorFlow is installed, and tf.summary) cannot be pointed at the emulator (FailedPreconditionError;
/work/shared/GCS-EMULATOR.md), hence EPATH_USE_TF=false here and TensorBoard events written locally and
copied into the bucket (smdiff/training/writers.py).

In one process: the config history and fingerprint, the topology record and the metric writers
(JSON lines, mirrored TensorBoard events), all in the bucket. Checkpoints are not tested here: Orbax's
OCDBT writes through TensorStore fail on this emulator ("Malformed StorageGeneration" on the conditional
write of manifest.ocdbt, and whole multi-process runs stalled); `smdiff.training.paths.run_path` keeps
their gs:// directory a URL (tests/test_training.py).
"""
import os
import subprocess
import sys
import time
import urllib.request

import fsspec
import pytest
from etils.epath import gpath

import distributed_runs as runs

pytestmark = pytest.mark.cluster

BUCKET = "smdiff-test"


@pytest.fixture(scope="module")
def emulator():
    """A running emulator with an empty in-memory bucket; the environment reaching it is set in this
    process (for reading back) and passed on to the training processes."""
    port = runs.free_port()
    url = f"http://localhost:{port}"
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator"), "start",
                               f"--port={port}", f"--default-bucket={BUCKET}", "--in-memory"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b/{BUCKET}", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.time() < deadline, "the GCS emulator did not start"
            time.sleep(0.3)
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
