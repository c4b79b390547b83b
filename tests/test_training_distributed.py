"""Two processes joined by `jax.distributed` on localhost (CPU, gloo collectives) train 3 steps of the
tiny deterministic Task (tests/training_tiny_task.py; a mechanics test, not a learning test), each
reading its own half of the data, and must end with identical parameters."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from training_tiny_task import COMPILATION_CACHE_ENV

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_to_identical_params(tmp_path):
    port = _free_port()
    env = {**os.environ, **COMPILATION_CACHE_ENV,
           "PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen([sys.executable, os.path.join(TESTS_DIR, "training_distributed_worker.py"),
                                 str(index), "2", str(port), str(tmp_path)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for index in range(2)]
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-4000:]
    params = [np.load(tmp_path / f"params-{index}.npz") for index in range(2)]
    assert int(params[0]["step"]) == int(params[1]["step"]) == 3
    assert set(params[0].files) == set(params[1].files) and len(params[0].files) > 1
    for name in params[0].files:
        np.testing.assert_array_equal(params[0][name], params[1][name])
    assert os.path.isdir(tmp_path / "checkpoints" / "3"), os.listdir(tmp_path / "checkpoints")
