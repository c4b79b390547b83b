"""Sampling and pianoroll-eval's generation as N processes x M simulated CPU devices (jax.distributed on
localhost), run by tests/sampling_processes.py as the jobs' mains run them: 2 processes x 2 devices and
1 process x 4 devices make the same bytes as 1 process x 1 device, every process makes only its own
chunks on all of its devices, and a run with one process SIGKILLed mid-way, run again, ends with the same
bytes and every chunk completed exactly once."""
import json
import re
import signal
import time

import pytest

import distributed_runs as runs

PROGRAM = ("tests/sampling_processes.py",)
JOBS = ("sample", "pianoroll")
NUM_CHUNKS = {"sample": 2 * 4, "pianoroll": 5 * 2}  # modes x chunks, tasks x chunks (sampling_processes.py)
TIMING = ("seconds", "samples_per_second", "process_index", "devices")  # what may differ in a chunk's marker
COMPLETED = re.compile(r"completed chunk (\S+)")


def _run(job, out, num_processes, devices_per_process, log_dir, name):
    runs.run([job, str(out)], num_processes, devices_per_process, log_dir, name, PROGRAM)


def _contents(out):
    """{relative path: bytes} of every output file; a marker without what says who made it and how fast."""
    contents = {}
    for path in sorted(out.rglob("*")):
        if path.is_dir() or path.name == "topology.json":
            continue
        relative = str(path.relative_to(out))
        if path.name == "DONE.json":
            contents[relative] = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING}
        else:
            contents[relative] = path.read_bytes()
    return contents


def _markers(out):
    return [json.loads(path.read_text()) for path in out.rglob("DONE.json")]


def _completions(log_dir, name):
    """Chunk name -> how many times a process of run `name` completed it (from the processes' logs)."""
    counts = {}
    for path in log_dir.glob(f"{name}-*.log"):
        for chunk in COMPLETED.findall(path.read_text()):
            counts[chunk] = counts.get(chunk, 0) + 1
    return counts


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """{job: contents} of one process with one device."""
    contents = {}
    for job in JOBS:
        out = tmp_path_factory.mktemp(f"{job}_1x1")
        _run(job, out / "out", 1, 1, out, "run")
        contents[job] = _contents(out / "out")
        assert sum(name.endswith("DONE.json") for name in contents[job]) == NUM_CHUNKS[job]
    return contents


@pytest.mark.parametrize("job", JOBS)
def test_two_processes_and_four_devices_make_the_bytes_of_one_device(job, reference, tmp_path):
    for processes, devices in ((1, 4), (2, 2)):
        name = f"{processes}x{devices}"
        out = tmp_path / name
        _run(job, out, processes, devices, tmp_path, name)
        assert _contents(out).keys() == reference[job].keys(), name
        for path, content in reference[job].items():
            assert _contents(out)[path] == content, f"{name}: {path} differs from the 1x1 run"
        # Every chunk made once, by the process that owns it, on all of that process's devices.
        assert set(_completions(tmp_path, name).values()) == {1} and len(_completions(tmp_path, name)) == NUM_CHUNKS[job]
        markers = _markers(out)
        assert {marker["process_index"] for marker in markers} == set(range(processes))
        assert all(len(marker["devices"]) == devices for marker in markers)
        assert sorted({d for marker in markers for d in marker["devices"]}) == list(range(processes * devices))
        topology = json.loads((out / "topology.json").read_text())
        assert (topology["process_count"], topology["device_count"]) == (processes, processes * devices)


@pytest.mark.parametrize("job", JOBS)
def test_a_process_killed_mid_run_loses_nothing_and_makes_nothing_twice(job, reference, tmp_path):
    out = tmp_path / "out"
    workers = runs.start([job, str(out)], 2, 2, tmp_path, "killed", PROGRAM)
    deadline = time.time() + 300
    while not any(marker.get("process_index") == 1 for marker in _markers(out) if out.exists()):
        assert all(worker.poll() is None for worker in workers), runs.logs(tmp_path, "killed")
        assert time.time() < deadline, runs.logs(tmp_path, "killed")
        time.sleep(0.05)
    workers[1].send_signal(signal.SIGKILL)  # in the middle of its next chunk
    try:
        workers[0].wait(timeout=20)  # it may finish its own chunks, then waits for the dead one
    except Exception:
        workers[0].kill()
    runs.kill_all(workers)
    assert 0 < len(_markers(out)) < NUM_CHUNKS[job]  # the kill left work to do

    _run(job, out, 2, 2, tmp_path, "rerun")
    assert _contents(out) == reference[job]
    made = _completions(tmp_path, "killed")
    for chunk, count in _completions(tmp_path, "rerun").items():
        made[chunk] = made.get(chunk, 0) + count
    assert len(made) == NUM_CHUNKS[job] and set(made.values()) == {1}, made
