"""Loop pieces without per-step host syncs: prefetch, on-device metrics and NaN guard, compile cache."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.training import loop_helpers, sharding
from smdiff.training.optimizer import OptimizerConfig
from smdiff.training.train_state import create_train_state, make_train_step
from training_tiny_task import TinyRegressionTask, regression_arrays

OPTIMIZER = OptimizerConfig(learning_rate=0.05, decay_steps=2, decay_rate=0.9, clip_norm=1.0)


def _host_batches(count: int):
    arrays = regression_arrays(16 * count)
    return [{name: value[16 * i:16 * (i + 1)] for name, value in arrays.items()} for i in range(count)]


def test_prefetched_training_equals_the_plain_loop_and_reads_one_batch_ahead():
    task, tx, mesh = TinyRegressionTask(), OPTIMIZER.make(), sharding.make_mesh()
    host = _host_batches(6)
    results = []
    for prefetch in (False, True):
        state = create_train_state(task, tx, jax.random.PRNGKey(0), sharding.global_batch(host[0], mesh), mesh,
                                   use_ema=False)
        step = make_train_step(task, tx, OPTIMIZER.schedule(), 0.0, mesh)
        batches = (loop_helpers.device_prefetch(iter(host), mesh) if prefetch
                   else (sharding.global_batch(b, mesh) for b in host))
        window = loop_helpers.MetricWindow()
        for i, batch in enumerate(batches):
            state, metrics = step(state, batch)
            window.add(i, metrics)
        results.append((jax.device_get(state.params), window.fetch()))
    for plain, prefetched in zip(jax.tree.leaves(results[0][0]), jax.tree.leaves(results[1][0])):
        np.testing.assert_array_equal(plain, prefetched)
    assert results[0][1] == results[1][1] and results[0][1]["loss"] > 0

    pulled = []
    source = (pulled.append(i) or batch for i, batch in enumerate(host))
    prefetched = loop_helpers.device_prefetch(source, mesh, size=2)
    next(prefetched)
    assert pulled == [0, 1]  # the current batch and the next one are on the devices


def test_metric_window_averages_on_device_and_names_the_first_non_finite_step():
    window = loop_helpers.MetricWindow()
    for step, loss in enumerate([1.0, 3.0]):
        window.add(step, {"loss": jnp.float32(loss), "grad_norm": jnp.float32(0.5), "finite": jnp.float32(1)})
    assert window.fetch() == {"loss": 2.0, "grad_norm": 0.5}
    assert window.fetch() == {}
    for step, (loss, finite) in enumerate([(1.0, 1), (np.nan, 0), (np.inf, 0), (2.0, 1)], start=10):
        window.add(step, {"loss": jnp.float32(loss), "grad_norm": jnp.float32(1.0), "finite": jnp.float32(finite)})
    with pytest.raises(loop_helpers.NonFiniteStepError, match="first at step 11") as error:
        window.fetch()
    assert error.value.step == 11


CACHED_RUN = """
import jax, jax.numpy as jnp, sys
from smdiff.training import loop_helpers
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
loop_helpers.enable_compilation_cache(sys.argv[1])
jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((8, 8))).block_until_ready()
print(events.count('/jax/compilation_cache/cache_hits'), events.count('/jax/compilation_cache/cache_misses'))
"""


def test_second_run_with_the_compilation_cache_compiles_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [subprocess.run([sys.executable, "-c", CACHED_RUN, str(tmp_path / "cache")], env=env, check=True,
                           capture_output=True, text=True).stdout.split() for _ in range(2)]
    first_hits, first_misses = map(int, runs[0])
    second_hits, second_misses = map(int, runs[1])
    assert first_misses >= 1 and first_hits == 0
    assert second_misses == 0 and second_hits == first_misses
