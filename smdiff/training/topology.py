"""Which processes and devices a job runs on: `jax.distributed` from the launcher's environment, a
record of what was found, and a stop when it is less than what the launcher asked for.

The launchers (launch/) set:
  SMDIFF_DISTRIBUTED=1         join the other processes with `jax.distributed.initialize()`: under SLURM
                               jax reads the task's SLURM_* variables (one task per GPU; see
                               launch/slurm.sh), on a Cloud TPU pod it asks the TPU metadata, and
                               JAX_COORDINATOR_ADDRESS overrides the coordinator.
  SMDIFF_NUM_PROCESSES, SMDIFF_PROCESS_ID   process count and id where no scheduler gives them
                               (several processes on one machine, e.g. `launch/local.sh --processes=N`).
  SMDIFF_EXPECTED_DEVICES      how many devices the job was launched for, over all processes.
"""
import json
import logging
import os
import socket

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

TOPOLOGY_FILE = "topology.json"


class TooFewDevicesError(RuntimeError):
    """The job sees fewer devices than it was launched for (a wrong process layout or a lost GPU)."""


def initialize_from_environment() -> None:
    """`jax.distributed.initialize()` when the launcher asked for it (SMDIFF_DISTRIBUTED=1), else nothing."""
    if os.environ.get("SMDIFF_DISTRIBUTED") != "1":
        return
    # CPU devices of several processes need a collectives backend (no effect on GPUs and TPUs).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    explicit = {}
    if "SMDIFF_NUM_PROCESSES" in os.environ:
        explicit = dict(num_processes=int(os.environ["SMDIFF_NUM_PROCESSES"]),
                        process_id=int(os.environ["SMDIFF_PROCESS_ID"]))
    jax.distributed.initialize(**explicit)


def describe() -> dict:
    """The processes and devices of this job, as JSON-ready values."""
    return {
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "platform": jax.devices()[0].platform,
        "devices": [{"id": device.id, "process_index": device.process_index, "kind": device.device_kind}
                    for device in jax.devices()],
        "hosts": _process_hosts(),
    }


def _process_hosts() -> list[str]:
    """Each process's host name, in process order (one small all-gather when there are several)."""
    name = socket.gethostname()
    if jax.process_count() == 1:
        return [name]
    encoded = np.frombuffer(name.encode()[:64].ljust(64, b"\0"), np.uint8)
    gathered = multihost_utils.process_allgather(encoded)  # [processes, 64]
    return [bytes(row).rstrip(b"\0").decode() for row in np.asarray(gathered)]


def start(output_dir: str) -> dict:
    """Initializes jax.distributed from the environment, logs the processes and devices, writes them to
    `<output_dir>/topology.json` (process 0), and stops if there are fewer devices than
    SMDIFF_EXPECTED_DEVICES. Returns what it wrote.

    Raises:
      TooFewDevicesError: fewer devices than the launcher asked for.
    """
    initialize_from_environment()
    found = describe()
    expected = os.environ.get("SMDIFF_EXPECTED_DEVICES")
    found["expected_devices"] = int(expected) if expected else None
    logging.info("process %d of %d on %s: %d local %s device(s), %d in all", jax.process_index(),
                 found["process_count"], socket.gethostname(), found["local_device_count"], found["platform"],
                 found["device_count"])
    if jax.process_index() == 0:
        path = epath.Path(output_dir) / TOPOLOGY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found, indent=1))
    if expected and found["device_count"] < int(expected):
        raise TooFewDevicesError(
            f"launched for {expected} devices but jax sees {found['device_count']} ({found['process_count']} "
            f"process(es) x {found['local_device_count']} local {found['platform']} device(s)); check the "
            f"process layout (one SLURM task per GPU) and the visible devices. Found: {found['devices']}")
    return found


def wait_for_all(name: str) -> None:
    """Blocks until every process of the job reaches the barrier `name` (returns at once in a one-process
    job); e.g. before process 0 reads what all processes wrote."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
