"""Training-core mechanics: sharded step equality, exact resume, NaN guard, retention, schedules.

These use the tiny deterministic regression Task of tests/training_tiny_task.py: they test equality of
trajectories and the loop's guarantees, not learning (real-music runs are in the model tests).
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from smdiff.training import loop as train_module
from smdiff.training import input_pipeline, sharding
from smdiff.training import workdir as workdir_module
from smdiff.training.checkpointing import Checkpointer, DamagedCheckpointError
from smdiff.training.optimizer import OptimizerConfig, ema_decay_at, ema_update
from smdiff.training.train_state import create_train_state, make_eval_step, make_train_step
from training_tiny_task import (COMPILATION_CACHE_ENV, TinyRegressionTask, compilation_cache,  # noqa: F401
                                regression_arrays, regression_dataset, train_tiny)

OPTIMIZER = OptimizerConfig(learning_rate=0.05, decay_steps=2, decay_rate=0.9, clip_norm=1.0)
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

def test_sharded_step_equals_single_device_step():
    assert len(jax.devices()) == 8, "conftest should give 8 simulated CPU devices"
    task, tx = TinyRegressionTask(), OPTIMIZER.make()
    local_batch = {name: value[:16] for name, value in regression_arrays(16).items()}
    final = {}
    for num_devices in (1, 8):
        mesh = sharding.make_mesh(jax.devices()[:num_devices])
        batch = sharding.global_batch(local_batch, mesh)
        state = create_train_state(task, tx, jax.random.PRNGKey(0), batch, mesh, use_ema=True)
        step = make_train_step(task, tx, OPTIMIZER.schedule(), 0.5, mesh)
        for _ in range(3):
            state, metrics = step(state, batch)
        assert len(batch["x"].sharding.device_set) == num_devices
        final[num_devices] = (jax.device_get(state.params), jax.device_get(state.ema_params), float(metrics["loss"]))
    for single, sharded in zip(jax.tree.leaves(final[1]), jax.tree.leaves(final[8])):
        np.testing.assert_allclose(single, sharded, rtol=1e-5, atol=1e-6)


def test_resumed_input_pipeline_sees_the_same_batches():
    """40 examples, global batches of 6: batches 4..9 cross epoch boundaries and must match exactly."""
    def batches(start, count):
        iterator = input_pipeline.train_batches(regression_dataset(40), 6, seed=7, start_step=start)
        return [next(iterator)["y"] for _ in range(count)]

    uninterrupted, resumed = batches(0, 10), batches(4, 6)
    for expected, actual in zip(uninterrupted[4:], resumed):
        np.testing.assert_array_equal(expected, actual)
    # Each epoch is a permutation of all 40 examples, in a different order each epoch.
    epochs = np.concatenate(uninterrupted)[:60]  # epoch 0 and half of epoch 1
    np.testing.assert_array_equal(np.sort(epochs[:40]), np.sort(regression_arrays(40)["y"]))
    assert not np.array_equal(epochs[:20], epochs[40:60])
    assert not np.array_equal(epochs[:40], regression_arrays(40)["y"])
    # String features (song ids) cannot be device arrays and are dropped.
    assert set(next(input_pipeline.train_batches(regression_dataset(40), 6, seed=7))) == {"x", "y"}


@pytest.mark.parametrize("process_count", [2, 3, 6])
def test_processes_read_their_rows_of_the_same_global_batches(process_count):
    """The order does not depend on the topology: process p of P reads rows [p*G/P, (p+1)*G/P) of the
    one-process global batch, from any start step."""
    def rows(step, index, count):
        return next(input_pipeline.train_batches(regression_dataset(40), 6, seed=7, start_step=step,
                                                 process_index=index, process_count=count))["y"]

    for step in (0, 5, 13):
        together = np.concatenate([rows(step, index, process_count) for index in range(process_count)])
        np.testing.assert_array_equal(together, rows(step, 0, 1))
    evaluation = [list(input_pipeline.eval_batches(regression_dataset(10), 6, 3, process_index=index,
                                                   process_count=process_count)) for index in range(process_count)]
    alone = list(input_pipeline.eval_batches(regression_dataset(10), 6, 3))
    for batch, parts in zip(alone, zip(*evaluation), strict=True):
        np.testing.assert_array_equal(batch["y"], np.concatenate([part["y"] for part in parts]))
    np.testing.assert_array_equal(np.concatenate([batch["y"] for batch in alone])[:10], regression_arrays(10)["y"])


def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    uninterrupted = train_tiny(tmp_path / "straight", 8)
    train_tiny(tmp_path / "resumed", 5)  # "killed" after step 5: its last checkpoint is the final step 5
    resumed = train_tiny(tmp_path / "resumed", 8)
    _assert_same_state(uninterrupted.state, resumed.state)
    assert int(resumed.state.step) == 8
    assert resumed.eval_metrics.keys() == {"eval/mse", "eval_ema/mse"}
    # The resumed run only trained steps 6..8, and logged them.
    logged_steps = [json.loads(line).get("step") for line in open(tmp_path / "resumed" / "metrics.jsonl")]
    assert logged_steps.count(8) == 2 and 6 in logged_steps  # train + eval at 8
    assert uninterrupted.train_metrics["train/steps_per_sec"] > 0
    assert uninterrupted.train_metrics["train/examples_per_sec"] == pytest.approx(
        16 * uninterrupted.train_metrics["train/steps_per_sec"])


def _assert_same_state(a, b):
    for field in ("params", "ema_params", "opt_state", "step", "rng"):
        for x, y in zip(jax.tree.leaves(getattr(a, field)), jax.tree.leaves(getattr(b, field)), strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_sigkilled_run_resumes_on_the_same_trajectory(tmp_path):
    """A real kill: a subprocess trains until SIGKILLed (maybe mid-save); resuming must ignore any
    half-written checkpoint and continue exactly as an uninterrupted run."""
    workdir = tmp_path / "killed"
    worker, log_path = _start_endless_run(workdir, checkpoint_every=3, tmp_path=tmp_path)
    try:
        _wait_for(lambda: any(name.isdigit() and int(name) >= 9 for name in _listdir(workdir / "checkpoints")),
                  worker, log_path)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed_at = max(int(name) for name in _listdir(workdir / "checkpoints") if name.isdigit())
    resumed = train_tiny(workdir, killed_at + 3, checkpoint_every_steps=3, eval_every_steps=1_000_000)
    uninterrupted = train_tiny(tmp_path / "straight", killed_at + 3, checkpoint_every_steps=3, eval_every_steps=1_000_000)
    _assert_same_state(uninterrupted.state, resumed.state)


@pytest.mark.slow
def test_sigterm_saves_the_current_step_and_stops(tmp_path):
    """A preemption notice (SIGTERM) makes the run save where it is, off the checkpoint period, and exit 0."""
    workdir = tmp_path / "preempted"
    worker, log_path = _start_endless_run(workdir, checkpoint_every=1_000_000, tmp_path=tmp_path)
    _wait_for(lambda: os.path.exists(workdir / "metrics.jsonl") and "step" in open(workdir / "metrics.jsonl").read(),
              worker, log_path)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0, log_path.read_text()[-3000:]
    (stop_line,) = [line for line in log_path.read_text().splitlines() if line.startswith("stopped at step")]
    stopped_at = int(stop_line.split()[3].rstrip(","))
    assert stop_line.endswith("preempted=True") and stopped_at >= 10
    checkpointer = Checkpointer(str(workdir / "checkpoints"))
    assert checkpointer.all_steps() == [stopped_at]
    checkpointer.close()


def _start_endless_run(workdir, checkpoint_every: int, tmp_path):
    """tests/training_tiny_task.py as a subprocess training the tiny task until stopped; its log file."""
    log_path = tmp_path / f"{os.path.basename(workdir)}.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, os.path.join(TESTS_DIR, "training_tiny_task.py"), str(workdir), str(checkpoint_every)],
            env={**os.environ, **COMPILATION_CACHE_ENV}, stdout=log, stderr=subprocess.STDOUT)
    return worker, log_path


def _wait_for(condition, worker, log_path, timeout: float = 180):
    deadline = time.time() + timeout
    while not condition():
        assert worker.poll() is None, log_path.read_text()[-3000:]
        assert time.time() < deadline, f"timed out; worker log: {log_path.read_text()[-3000:]}"
        time.sleep(0.05)


def _listdir(path):
    return os.listdir(path) if os.path.isdir(path) else []


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(train_module.NonFiniteLossError, match=r"at step 5\b.*Last good checkpoint: step 4"):
        train_tiny(tmp_path, 10, task=TinyRegressionTask(nan_from_step=5))
    checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
    assert checkpointer.all_steps() == [2, 4]
    params = checkpointer.restore_params(sharding.replicated(sharding.make_mesh()), ema=False)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(params))
    checkpointer.close()


def test_nan_at_a_non_logging_step_is_caught_before_the_next_checkpoint(tmp_path):
    """The loop checks the on-device NaN guard only when it logs, evaluates or saves: a NaN in the update
    at step 4 (no log or evaluation until step 100) must still stop the run before the checkpoint of
    step 6, which would otherwise record 6 consumed batches for a state that stopped at step 4."""
    with pytest.raises(train_module.NonFiniteLossError,
                       match=r"at step 4 \(found at the check after step 6\).*Last good checkpoint: step 3"):
        train_tiny(tmp_path, 10, task=TinyRegressionTask(nan_from_step=4), log_every_steps=100,
                   eval_every_steps=100, checkpoint_every_steps=3)
    checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
    assert checkpointer.all_steps() == [3]
    checkpointer.close()


def test_train_loop_equals_the_step_by_step_loop(tmp_path):
    """train() (device prefetch, metrics summed on device, host syncs only to log/evaluate/save) gives
    exactly the parameters, EMA, optimizer state and logged loss means of the plain loop that puts each
    batch on the devices, runs the step and reads its metrics before the next one."""
    num_steps, log_every = 7, 3
    result = train_tiny(tmp_path, num_steps, log_every_steps=log_every)

    task, tx, mesh = TinyRegressionTask(), OPTIMIZER.make(), sharding.make_mesh()
    examples = input_pipeline.random_access(regression_dataset(40))
    batches = input_pipeline.train_batches(examples, 16, seed=3)
    first = sharding.global_batch(next(input_pipeline.train_batches(examples, 16, seed=3)), mesh)
    state = create_train_state(task, tx, jax.random.PRNGKey(3), first, mesh, use_ema=True)
    step = make_train_step(task, tx, OPTIMIZER.schedule(), 0.9, mesh)
    logged, loss_sum, count = {}, None, 0
    for index in range(num_steps):
        state, metrics = step(state, sharding.global_batch(next(batches), mesh))
        assert bool(jax.device_get(metrics["finite"]))
        loss_sum = np.add(loss_sum, metrics["loss"]) if count else np.asarray(metrics["loss"])
        count += 1
        if (index + 1) % log_every == 0 or index + 1 == num_steps:
            logged[index + 1], loss_sum, count = float(loss_sum) / count, None, 0

    for field in ("params", "ema_params", "opt_state", "step", "rng"):
        for plain, looped in zip(jax.tree.leaves(getattr(state, field)), jax.tree.leaves(getattr(result.state, field)),
                                 strict=True):
            np.testing.assert_array_equal(np.asarray(plain), np.asarray(looped))
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    written = {record["step"]: record["train/loss"] for record in records if "train/loss" in record}
    assert written == logged


def test_evaluation_sums_on_device_and_logs_the_float32_host_means(tmp_path, monkeypatch):
    """The logged eval means are the float32 sums over the eval batches, computed here on the host one
    batch at a time, divided by the batch count; the loop keeps the sums on device (jax arrays, not
    numpy values) and fetches them once per evaluation."""
    num_batches = 3
    result = train_tiny(tmp_path, 4, eval_every_steps=4, num_eval_batches=num_batches)
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    logged = {name: value for record in records if record.get("step") == 4
              for name, value in record.items() if name.startswith("eval")}

    mesh, task = sharding.make_mesh(), TinyRegressionTask()
    eval_step = make_eval_step(task, mesh)
    examples = input_pipeline.random_access(regression_dataset(24))
    rng = jax.random.PRNGKey(3 + 1)
    expected = {}
    for prefix, params in (("eval", result.state.params), ("eval_ema", result.state.ema_params)):
        total = np.float32(0)
        for index, batch in enumerate(input_pipeline.eval_batches(examples, 16, num_batches)):
            metrics = eval_step(params, sharding.global_batch(batch, mesh), jax.random.fold_in(rng, index))
            total += np.asarray(metrics["mse"], np.float32)
        expected[f"{prefix}/mse"] = float(total) / num_batches
    assert logged == expected

    fetches = []  # (jax's transfer guard cannot tell: on CPUs, device arrays are already host memory)
    device_get = jax.device_get
    monkeypatch.setattr(jax, "device_get", lambda tree: fetches.append(tree) or device_get(tree))
    means = train_module._evaluate(eval_step, result.state, examples, 16, num_batches, mesh, seed=3)
    assert means == expected
    assert len(fetches) == 1 and all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(fetches[0]))


def test_checkpoint_retention_keeps_last_n_and_every_m(tmp_path):
    train_tiny(tmp_path, 9, checkpoint_every_steps=1, keep_checkpoints=2, keep_every_steps=4, eval_every_steps=100)
    checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
    assert checkpointer.all_steps() == [4, 8, 9]  # multiples of 4, plus the newest two
    checkpointer.close()


def test_resume_with_a_different_seed_is_refused(tmp_path):
    train_tiny(tmp_path, 2, eval_every_steps=100)
    with pytest.raises(ValueError, match="seed=3 but this run has seed=4"):
        train_tiny(tmp_path, 4, seed=4)


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not divisible by the 8 devices"):
        train_tiny(tmp_path, 1, global_batch_size=12)
    with pytest.raises(ValueError, match="must be >= 1: {'log_every_steps': 0}"):
        train_tiny(tmp_path, 1, log_every_steps=0)
    with pytest.raises(ValueError, match="ema_decay"):
        train_tiny(tmp_path, 1, ema_decay=1.0)
    with pytest.raises(ValueError, match="dataset of dicts"):
        next(input_pipeline.train_batches(regression_dataset(8).map(lambda example: example["x"]), 4, seed=0))
    with pytest.raises(ValueError, match="split is empty"):
        next(input_pipeline.train_batches(regression_dataset(8).take(0), 4, seed=0))
    with pytest.raises(ValueError, match="no numeric features"):
        next(input_pipeline.train_batches(regression_dataset(8).map(lambda e: {"id": e["song_id"]}), 4, seed=0))


def test_staircase_schedule_with_magenta_style_floor():
    schedule = OptimizerConfig(learning_rate=1e-3, decay_steps=4000, decay_rate=0.98).schedule()
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(3999)) == pytest.approx(1e-3)
    assert float(schedule(4000)) == pytest.approx(0.98e-3)
    assert float(schedule(8001)) == pytest.approx(0.98 ** 2 * 1e-3)
    magenta = OptimizerConfig(learning_rate=1e-3, decay_steps=1, decay_rate=0.9999, staircase=False,
                              min_learning_rate=1e-5).schedule()
    assert float(magenta(1000)) == pytest.approx((1e-3 - 1e-5) * 0.9999 ** 1000 + 1e-5, rel=1e-4)  # float32 powers
    with pytest.raises(ValueError):
        OptimizerConfig(learning_rate=1e-3, min_learning_rate=1e-2)


def test_clipping_scales_the_gradient_to_the_global_norm():
    """Adam's first moment after one step is (1 - b1) * the gradient it saw: norm 0.1 * 0.5 when clipped
    to 0.5, zero when the norm 50 is above Magenta's zeroing threshold."""
    params, grads = {"w": jnp.zeros(3)}, {"w": jnp.array([30.0, 40.0, 0.0])}
    for clip_norm, zero_above, seen_norm in ((0.5, 0.0, 0.5), (0.0, 0.0, 50.0), (0.5, 49.0, 0.0), (0.0, 51.0, 50.0)):
        tx = OptimizerConfig(learning_rate=1.0, decay_rate=1.0, clip_norm=clip_norm,
                             zero_gradients_above_norm=zero_above).make()
        _, state = tx.update(grads, tx.init(params), params)
        first_moment = optax.tree_utils.tree_get(state, "mu")["w"]
        np.testing.assert_allclose(np.linalg.norm(first_moment), 0.1 * seen_norm, rtol=1e-5)


def test_gradient_accumulation_gives_the_update_of_one_big_batch():
    # A loss that draws no random numbers (no dropout): then 4 microbatches of 16 (2 per device on 8
    # devices) must give the update of one batch of 64, to float summation order.
    task, tx = TinyRegressionTask(dropout=0.0), OPTIMIZER.make()
    mesh = sharding.make_mesh()
    batch = sharding.global_batch(regression_arrays(64), mesh)
    final = {}
    for accum in (1, 4):
        state = create_train_state(task, tx, jax.random.PRNGKey(0), batch, mesh, use_ema=True)
        step = make_train_step(task, tx, OPTIMIZER.schedule(), 0.5, mesh, grad_accum_steps=accum)
        for _ in range(3):
            state, metrics = step(state, batch)
        final[accum] = (jax.device_get(state.params), jax.device_get(state.opt_state),
                        {name: float(value) for name, value in metrics.items()})
    for big, accumulated in zip(jax.tree.leaves(final[1]), jax.tree.leaves(final[4])):
        np.testing.assert_allclose(big, accumulated, rtol=1e-5, atol=1e-6)
    # With dropout the microbatches draw their own masks: still a finite update, now a different one.
    state = create_train_state(TinyRegressionTask(), tx, jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    state, metrics = make_train_step(TinyRegressionTask(), tx, OPTIMIZER.schedule(), 0.0, mesh, grad_accum_steps=4)(
        state, batch)
    assert float(metrics["finite"]) == 1.0


def test_gradient_accumulation_rejects_a_batch_it_cannot_split():
    task, tx = TinyRegressionTask(dropout=0.0), OPTIMIZER.make()
    mesh = sharding.make_mesh()
    batch = sharding.global_batch(regression_arrays(32), mesh)  # 3 microbatches of 32 on 8 devices: no
    state = create_train_state(task, tx, jax.random.PRNGKey(0), batch, mesh, use_ema=False)
    with pytest.raises(ValueError, match="microbatches"):
        make_train_step(task, tx, OPTIMIZER.schedule(), 0.0, mesh, grad_accum_steps=3)(state, batch)


def test_train_logs_mfu_with_a_peak(tmp_path):
    result = train_tiny(tmp_path, 4, peak_tflops=1.0, grad_accum_steps=2)
    assert 0 < result.train_metrics["train/mfu"] < 1
    assert result.train_metrics["train/steps_per_sec"] > 0


def _damage_an_array_file(checkpoint_dir):
    """Zero the second half of the checkpoint's largest array data file and cut its last quarter off."""
    data_files = [path for path in glob.glob(os.path.join(checkpoint_dir, "state", "d", "*"))]
    path = max(data_files, key=os.path.getsize)
    size = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.seek(size // 2)
        file.write(b"\0" * (size - size // 2))
        file.truncate(size * 3 // 4)


def test_a_damaged_latest_checkpoint_is_named_set_aside_and_the_run_resumes_before_it(tmp_path, caplog):
    train_tiny(tmp_path / "damaged", 4)  # checkpoints 2 and 4
    _damage_an_array_file(tmp_path / "damaged" / "checkpoints" / "4")
    checkpointer = Checkpointer(str(tmp_path / "damaged" / "checkpoints"))
    fresh = train_tiny(tmp_path / "fresh", 0).state
    with pytest.raises(DamagedCheckpointError, match=r"checkpoint step 4 in .*damaged/checkpoints cannot be read"):
        checkpointer.restore(fresh)
    checkpointer.close()
    with caplog.at_level("WARNING"):
        resumed = train_tiny(tmp_path / "damaged", 6)
    assert any("checkpoint step 4" in record.getMessage() and "resuming from step 2" in record.getMessage()
               for record in caplog.records)
    assert os.listdir(tmp_path / "damaged" / "checkpoints-set-aside") == ["4"]
    _assert_same_state(train_tiny(tmp_path / "straight", 6).state, resumed.state)


def test_a_failed_restore_prints_only_its_error(tmp_path, monkeypatch):
    """Orbax closes its event loop at the first failed read while TensorStore completes the others; their
    "Event loop is closed" errors must not reach sys.unraisablehook (a traceback each after the clear
    error: 90 in 20 such restores before the fix), while any other unraisable exception still does."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    train_tiny(tmp_path / "damaged", 2)
    _damage_an_array_file(tmp_path / "damaged" / "checkpoints" / "2")
    fresh = train_tiny(tmp_path / "fresh", 0).state
    for _ in range(5):
        checkpointer = Checkpointer(str(tmp_path / "damaged" / "checkpoints"))
        with pytest.raises(DamagedCheckpointError):
            checkpointer.restore(fresh)
        checkpointer.close()
    time.sleep(0.5)  # the abandoned reads complete after restore has raised
    assert [str(unraisable.exc_value) for unraisable in seen] == []
    other = RuntimeError("another failure")
    sys.unraisablehook(type("Unraisable", (), {"exc_type": RuntimeError, "exc_value": other})())
    assert [unraisable.exc_value for unraisable in seen] == [other]


def test_restore_step_resumes_from_an_earlier_checkpoint(tmp_path):
    train_tiny(tmp_path / "run", 6)  # checkpoints 2, 4, 6
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 3; the checkpoints are \[2, 4, 6\]"):
        train_tiny(tmp_path / "run", 6, restore_step=3)
    resumed = train_tiny(tmp_path / "run", 5, restore_step=2)
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints-set-aside")) == ["4", "6"]
    _assert_same_state(train_tiny(tmp_path / "straight", 5).state, resumed.state)


def test_run_paths_keep_urls_and_make_local_paths_absolute(tmp_path, monkeypatch):
    from smdiff.training.paths import run_path

    monkeypatch.chdir(tmp_path)
    assert str(run_path("gs://bucket/run") / "checkpoints") == "gs://bucket/run/checkpoints"
    assert str(run_path("run/a")) == str(tmp_path / "run" / "a")
    checkpointer = Checkpointer("relative/checkpoints")  # Orbax needs an absolute local directory
    assert checkpointer.all_steps() == [] and os.path.isdir(tmp_path / "relative" / "checkpoints")
    checkpointer.close()


def test_a_run_says_whether_it_kept_ema_params_and_restores_the_ones_asked_for(tmp_path):
    """`smdiff sample --prior_weights` and its chunk markers rely on these: raw and EMA params differ
    where the run kept an EMA, and asking for the EMA of a run without one gives its params."""
    mesh = sharding.replicated(sharding.make_mesh())
    for ema_decay in (0.9, 0.0):
        workdir = tmp_path / f"ema_{ema_decay}"
        train_tiny(workdir, 4, ema_decay=ema_decay)
        assert workdir_module.kept_ema(str(workdir)) == (ema_decay > 0)
        checkpointer = Checkpointer(str(workdir / "checkpoints"))
        ema, raw = (jax.device_get(checkpointer.restore_params(mesh, ema=flag)) for flag in (True, False))
        checkpointer.close()
        same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(ema), jax.tree.leaves(raw)))
        assert same == (ema_decay == 0)


def test_ema_is_warmed_up_so_a_short_run_forgets_its_initialisation():
    """ema_n = init * prod(d_t) + p * (1 - prod(d_t)) for constant params p, d_t = min(decay, (1+t)/(10+t))."""
    ema, params = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
    for t in range(300):
        ema = ema_update(ema, params, 0.999, jnp.asarray(t))
    kept = np.prod([min(0.999, (1 + t) / (10 + t)) for t in range(300)])
    np.testing.assert_allclose(np.asarray(ema["w"]), 1.0 - kept, rtol=1e-5)
    assert kept < 0.05 < 0.999 ** 300  # plain 0.999 would keep 74% of the initialisation
    assert float(ema_decay_at(0.999, 10**6)) == pytest.approx(0.999)
