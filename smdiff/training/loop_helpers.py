"""Pieces of a training loop without per-step host syncs: device-side prefetch of the next global batch,
metrics (and the NaN guard) accumulated on device and fetched only when logged, and jax's persistent
compilation cache.

The loop in `smdiff/training/loop.py` does not use them yet (it syncs on `finite` every step); they are built
and tested here so that the loop body can switch to them in one change:

    enable_compilation_cache()
    batches = device_prefetch(host_batches, mesh)
    window = MetricWindow()
    for step in ...:
        state, metrics = train_step(state, next(batches))
        window.add(step, metrics)                  # device ops only, no sync
        if (step + 1) % log_every_steps == 0:
            means = window.fetch()                  # one sync; raises NonFiniteStepError naming the step
"""
from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from smdiff.training import sharding

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "smdiff", "jax")


def enable_compilation_cache(cache_dir: str | None = None) -> str:
    """Turns on jax's persistent compilation cache: a second run of the same program compiles nothing.

    `cache_dir` default: $SMDIFF_JAX_CACHE_DIR, else ~/.cache/smdiff/jax (a workdir's would be lost with
    the workdir, and the same model's step is the same program in every run). Every compilation is
    cached (no minimum compile time): the trainers' small CPU steps compile in well under a second.
    Returns the directory used.
    """
    cache_dir = cache_dir or os.environ.get("SMDIFF_JAX_CACHE_DIR", DEFAULT_CACHE_DIR)
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return cache_dir


def device_prefetch(batches: Iterable[dict[str, np.ndarray]], mesh: Mesh, size: int = 2
                    ) -> Iterator[dict[str, jax.Array]]:
    """Yields each process-local batch as global arrays on the mesh, `size` batches ahead (2 = double
    buffering): the transfer of the next batch is issued (asynchronously) before the current one is
    used, so it overlaps the step that runs meanwhile."""
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    queue: collections.deque = collections.deque()
    for batch in batches:
        queue.append(sharding.global_batch(batch, mesh))
        if len(queue) > size - 1:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


class NonFiniteStepError(FloatingPointError):
    """A training step gave a non-finite loss or gradient norm; `step` is the first such step."""

    def __init__(self, step: int, loss: float, grad_norm: float):
        super().__init__(f"non-finite loss ({loss}) or gradient norm ({grad_norm}) first at step {step}")
        self.step = step


class MetricWindow:
    """Sums a train step's metrics on device between fetches, and remembers on device the first step
    whose `finite` metric was 0 (with its loss and gradient norm), so the loop never waits for the
    device except in `fetch`."""

    def __init__(self):
        self._sums = None
        self._count = 0
        self._first_bad = None  # (step, loss, grad_norm) on device; step -1 = none yet

    def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
        """Adds one step's metrics (dispatches device additions; does not block)."""
        self._sums = metrics if self._sums is None else jax.tree.map(jnp.add, self._sums, metrics)
        self._count += 1
        bad = metrics["finite"] == 0
        candidate = (jnp.where(bad, step, -1), metrics["loss"], metrics["grad_norm"])
        if self._first_bad is None:
            self._first_bad = candidate
        else:
            seen = self._first_bad[0] >= 0
            self._first_bad = tuple(jnp.where(seen, old, new) for old, new in zip(self._first_bad, candidate))

    def fetch(self) -> dict[str, float]:
        """Means since the last fetch (one device-to-host transfer), without `finite`; resets.

        Raises NonFiniteStepError naming the first non-finite step of the window."""
        if self._sums is None:
            return {}
        sums, first_bad = jax.device_get((self._sums, self._first_bad))
        count = self._count
        self._sums, self._count, self._first_bad = None, 0, None
        if first_bad[0] >= 0:
            raise NonFiniteStepError(int(first_bad[0]), float(first_bad[1]), float(first_bad[2]))
        return {name: float(value) / count for name, value in sums.items() if name != "finite"}
