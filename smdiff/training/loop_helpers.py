"""Pieces of the training loop (smdiff/training/loop.py) that keep it free of per-step host syncs:
device-side prefetch of the next global batch, metrics (and the NaN guard) accumulated on device and
fetched only when the loop logs, evaluates or saves, and jax's persistent compilation cache (which every
job turns on at its start).
"""
from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.compilation_cache import compilation_cache
from jax.sharding import Mesh

from smdiff.training import sharding

CACHE_DIR_ENV = "SMDIFF_JAX_CACHE_DIR"


def default_cache_dir() -> str:
    """The user's cache folder for smdiff's compiled programs: $XDG_CACHE_HOME/smdiff/jax (~/.cache/...)."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                        "smdiff", "jax")


def enable_compilation_cache(cache_dir: str | None = None) -> str:
    """Turns on jax's persistent compilation cache: a second run of the same program compiles nothing.
    Every job calls this at its start (before it compiles anything).

    The folder (local or a gs:// URL; jax creates it), first found of: `cache_dir`; $SMDIFF_JAX_CACHE_DIR;
    a folder jax was already given (the JAX_COMPILATION_CACHE_DIR variable or jax.config, e.g. by the
    tests); the user cache dir (`default_cache_dir`). Not the workdir: the same model's step is the same
    program in every run. Every compilation is cached (no minimum compile time or size): the small
    models' steps compile in under a second on a CPU but take seconds to minutes on accelerators. In a
    multi-process run only process 0 writes entries (jax's rule). With 2 CPU processes (jax 0.10.2) the
    other process's keys differed from process 0's, so it compiled its own programs in every run; jax
    leaves the device assignment out of GPU keys so that processes share them. To turn the cache off,
    set JAX_ENABLE_COMPILATION_CACHE=false. Returns the folder used.
    """
    cache_dir = (cache_dir or os.environ.get(CACHE_DIR_ENV) or jax.config.jax_compilation_cache_dir
                 or default_cache_dir())
    if cache_dir != jax.config.jax_compilation_cache_dir:
        compilation_cache.reset_cache()  # jax keeps the folder it first compiled with until reset
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
        self.step, self.loss, self.grad_norm = step, loss, grad_norm


# Step index -1: no non-finite step seen yet.
_NONE_BAD = -1


@jax.jit
def add_metrics(sums: dict[str, jax.Array], metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """sums + metrics, metric by metric, on device (one jitted dispatch; does not block)."""
    return jax.tree.map(jnp.add, sums, metrics)


@jax.jit
def _start_window(metrics: dict[str, jax.Array], step: jax.Array):
    """(sums, (first bad step or -1, its loss, its grad norm)) of a window holding one step."""
    bad = metrics["finite"] == 0
    return metrics, (jnp.where(bad, step, _NONE_BAD), metrics["loss"], metrics["grad_norm"])


@jax.jit
def _add_to_window(sums: dict[str, jax.Array], first_bad, metrics: dict[str, jax.Array], step: jax.Array):
    """The window with one more step: sums + metrics, and the first bad step kept if there was one."""
    sums = add_metrics(sums, metrics)
    new_bad = (metrics["finite"] == 0) & (first_bad[0] == _NONE_BAD)
    candidate = (step, metrics["loss"], metrics["grad_norm"])
    return sums, tuple(jnp.where(new_bad, new, old) for old, new in zip(first_bad, candidate))


class MetricWindow:
    """Sums a train step's metrics on device between fetches, and remembers on device the first step
    whose `finite` metric was 0 (with its loss and gradient norm), so the loop waits for the device only
    in `check_finite` and `fetch`. Each `add` is one jitted dispatch (a few tiny eager ops per metric
    would cost more than a small model's step on a CPU)."""

    def __init__(self):
        self._sums = None
        self._count = 0
        self._first_bad = None  # (step, loss, grad_norm) on device; step -1 = none yet

    def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
        """Adds one step's metrics (dispatches device work; does not block)."""
        step = np.int32(step)
        if self._sums is None:
            self._sums, self._first_bad = _start_window(metrics, step)
        else:
            self._sums, self._first_bad = _add_to_window(self._sums, self._first_bad, metrics, step)
        self._count += 1

    def check_finite(self) -> None:
        """Waits for the steps added so far; raises NonFiniteStepError naming the window's first
        non-finite step (the window is kept: fetch it later)."""
        if self._first_bad is not None:
            self._raise_if_bad(jax.device_get(self._first_bad))

    def fetch(self) -> dict[str, float]:
        """Means since the last fetch (one device-to-host transfer), without `finite`; resets.

        Raises NonFiniteStepError naming the first non-finite step of the window."""
        if self._sums is None:
            return {}
        sums, first_bad = jax.device_get((self._sums, self._first_bad))
        count = self._count
        self._sums, self._count, self._first_bad = None, 0, None
        self._raise_if_bad(first_bad)
        return {name: float(value) / count for name, value in sums.items() if name != "finite"}

    @staticmethod
    def _raise_if_bad(first_bad) -> None:
        step, loss, grad_norm = first_bad
        if step != _NONE_BAD:
            raise NonFiniteStepError(int(step), float(loss), float(grad_norm))
