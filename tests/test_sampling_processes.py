"""Sampling and pianoroll-eval's generation as N processes x M simulated CPU devices (jax.distributed on
localhost), run by tests/sampling_processes.py as the jobs' mains run them: 2 processes x 2 devices and
1 process x 4 devices make the same bytes as 1 process x 1 device, every process makes only its own
chunks on all of its devices, and a run with one process SIGKILLed mid-way, run again, ends with the same
bytes and every chunk completed exactly once."""
import re
import signal
import subprocess
import time

import pytest

import distributed_runs as runs

PROGRAM = ("tests/sampling_processes.py",)
JOBS = ("sample", "pianoroll")
NUM_CHUNKS = {"sample": 2 * 2, "pianoroll": 5 * 1}  # modes x chunks, tasks x chunks (sampling_processes.py)
COMPLETED = re.compile(r"completed chunk (\S+)")

# Each test starts 2 to 5 Python processes, each importing jax, TensorFlow and music21 and compiling its
# sampler: minutes on 2 cores.
pytestmark = pytest.mark.slow


def _run(job, out, num_processes, devices_per_process, log_dir, name):
    runs.run([job, str(out)], num_processes, devices_per_process, log_dir, name, PROGRAM)


def _completions(log_dir, name):
    """Chunk name -> how many times a process of run `name` completed it (from the processes' logs)."""
    counts = {}
    for path in log_dir.glob(f"{name}-*.log"):
        for chunk in COMPLETED.findall(path.read_text()):
            counts[chunk] = counts.get(chunk, 0) + 1
    return counts


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """job -> contents of its run as one process with one device (made on first use)."""
    made = {}

    def contents(job):
        if job not in made:
            out = tmp_path_factory.mktemp(f"{job}_1x1")
            _run(job, out / "out", 1, 1, out, "run")
            made[job] = runs.sampling_contents(out / "out")
            assert sum(name.endswith("DONE.json") for name in made[job]) == NUM_CHUNKS[job]
        return made[job]

    return contents


@pytest.mark.parametrize("job", JOBS)
def test_four_devices_make_the_bytes_of_one_device(job, reference, tmp_path):
    out = tmp_path / "out"
    _run(job, out, 1, 4, tmp_path, "1x4")
    assert runs.sampling_contents(out) == reference(job)
    runs.assert_every_process_made_chunks(out, 1, 4)


@pytest.mark.parametrize("job", JOBS)
def test_two_processes_killed_mid_run_and_rerun_make_the_bytes_of_one_each_chunk_once(job, reference, tmp_path):
    """2 processes x 2 devices; process 1 is SIGKILLed after its first chunk, the other soon after (as a
    scheduler ends the job); the rerun finishes the work."""
    out = tmp_path / "out"
    workers = runs.start([job, str(out)], 2, 2, tmp_path, "killed", PROGRAM)
    deadline = time.time() + 400
    while not any(marker.get("process_index") == 1 for marker in runs.chunk_markers(out) if out.exists()):
        assert all(worker.poll() is None for worker in workers), runs.logs(tmp_path, "killed")
        assert time.time() < deadline, runs.logs(tmp_path, "killed")
        time.sleep(0.05)
    workers[1].send_signal(signal.SIGKILL)  # in the middle of its next chunk
    try:
        workers[0].wait(timeout=10)  # it may finish its own chunks, then waits for the dead one
    except subprocess.TimeoutExpired:
        pass
    runs.kill_all(workers)
    assert 0 < len(runs.chunk_markers(out)) < NUM_CHUNKS[job]  # the kill left work to do

    _run(job, out, 2, 2, tmp_path, "rerun")
    assert runs.sampling_contents(out) == reference(job)
    made = _completions(tmp_path, "killed")
    for chunk, count in _completions(tmp_path, "rerun").items():
        made[chunk] = made.get(chunk, 0) + count
    assert len(made) == NUM_CHUNKS[job] and set(made.values()) == {1}, made  # no chunk made twice
    runs.assert_every_process_made_chunks(out, 2, 2)
