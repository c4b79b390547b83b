"""Multi-process training equals one-process training, on real data, through `smdiff train`.

N processes x M simulated CPU devices (jax.distributed on localhost) must end with the parameters of one
process with N*M devices (to float tolerance: the all-reduce sums in another order), also when every
process is killed mid-run and the run resumed, on the same or on another process count; a preemption
notice (SIGTERM) to one process stops all of them cleanly at the same step. Before the data order was
made topology-independent, 2 x 2 and 1 x 4 differed by up to 0.14 after 3 steps on this data. A second
run of the same config compiles nothing (jax's persistent compilation cache).
"""
import json
import shutil
import signal

import pytest

import distributed_runs as runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return runs.build_chunks(tmp_path_factory.mktemp("tfds"))


def test_killed_and_resumed_on_any_process_count_equals_one_process(tmp_path, data_dir):
    killed = tmp_path / "killed"
    workers = runs.start(runs.train_flags(killed, data_dir, 100_000), 2, 2, tmp_path, "endless")
    try:
        runs.wait_for_step(killed, 4, workers, tmp_path, "endless")
    finally:
        runs.kill_all(workers)
    killed_at = runs.checkpoint_steps(killed)[-1]
    end = killed_at + 4
    moved = tmp_path / "moved"
    shutil.copytree(killed, moved)
    runs.run(runs.train_flags(killed, data_dir, end), 2, 2, tmp_path, "resumed")
    runs.run(runs.train_flags(moved, data_dir, end), 1, 4, tmp_path, "moved")  # resumed on one process
    runs.run(runs.train_flags(tmp_path / "straight", data_dir, end), 1, 4, tmp_path, "straight")
    straight = runs.final_params(tmp_path / "straight")
    assert int(straight["step"]) == end
    runs.assert_same_params(straight, runs.final_params(killed))
    runs.assert_same_params(straight, runs.final_params(moved))
    # Every device of both processes was in the run, as the launcher asked.
    topology = json.loads((killed / "topology.json").read_text())
    assert topology["process_count"] == 2 and topology["expected_devices"] == 4
    assert sorted(d["process_index"] for d in topology["devices"]) == [0, 0, 1, 1]
    assert len({d["id"] for d in topology["devices"]}) == 4


def test_sigterm_to_one_process_stops_every_process_at_the_same_step(tmp_path, data_dir):
    workdir = tmp_path / "preempted"
    workers = runs.start(runs.train_flags(workdir, data_dir, 100_000, 100_000), 2, 2, tmp_path, "preempted")
    try:
        runs.wait_for_step_logged(workdir, 2, workers, tmp_path, "preempted")
        workers[1].send_signal(signal.SIGTERM)
        codes = runs.wait(workers, tmp_path, "preempted", timeout=180)
    finally:
        for worker in workers:
            worker.kill()
    assert codes == [0, 0], runs.logs(tmp_path, "preempted")
    (saved,) = runs.checkpoint_steps(workdir)
    stops = [line for index in range(2) for line in (tmp_path / f"preempted-{index}.log").read_text().splitlines()
             if "preemption notice" in line]
    assert len(stops) == 2 and all(f"saved step {saved} " in line for line in stops), stops


def test_a_second_run_of_the_same_config_compiles_nothing(tmp_path, data_dir, monkeypatch):
    """`smdiff train` turns on jax's persistent compilation cache at its start: the second run of the same
    config (in another workdir) reads every program from it. (One process: on CPUs jax keys the programs
    of a multi-process run by process, and only process 0 writes, so the others compile each time.)"""
    monkeypatch.setenv("SMDIFF_JAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("JAX_EXPLAIN_CACHE_MISSES", "true")  # persistent-cache misses logged as warnings
    monkeypatch.setenv("JAX_LOG_COMPILES", "true")  # and hits
    for name in ("first", "second"):
        runs.run(runs.train_flags(tmp_path / name, data_dir, 2), 1, 2, tmp_path, name)
    first, second = ((tmp_path / f"{name}-0.log").read_text() for name in ("first", "second"))
    compiled = first.count("PERSISTENT COMPILATION CACHE MISS")
    assert compiled >= 3  # at least the state's initialisation, the train step and the metric window
    assert not [line for line in second.splitlines() if "PERSISTENT COMPILATION CACHE MISS" in line]
    assert second.count("Persistent compilation cache hit") == compiled
