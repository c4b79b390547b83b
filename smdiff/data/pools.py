"""Process pools for data ingest that scale with cores: cheap worker start, batched tasks, bounded memory.

Why the earlier spawn pools were no faster with 2 workers than with 1 (measured on 3,000 folk MIDI
files, benchmarks/RESULTS.md "Melody data pipeline"):
  - start-up: every spawned worker imported note_seq afresh, whose package `__init__` pulls in pandas
    and bokeh (~1.1 s of CPU and 2-6 s of wall time per worker on the shared cores), more than the
    whole 1-worker run of 3,000 files costs (~1.2 ms of CPU per file);
  - per-file messages: one task (or a chunk of 4) per file made the parent spend ~0.4 ms of CPU per
    file pickling tasks and unpickling results, a third of a file's work, on the same cores.
So workers here fork from a forkserver that imported the worker's module once (`forkserver`, not
`fork`: the server is a fresh single-threaded process, so the caller's TensorFlow threads are not
copied), with note_seq's modules but not its package `__init__` (`worker_imports`), tasks carry `batch_size` items, and at most `2 x workers` batches are in flight, so neither
the inputs (archive bytes) nor the finished results pile up when the consumer is slower than the pool.
"""
from __future__ import annotations

import collections
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Batches in flight per worker: one being worked on, one queued, so a worker never waits for the parent.
_IN_FLIGHT_PER_WORKER = 2


def _batches(items: Iterable[Item], batch_size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _map_batch(worker_and_batch: tuple[Callable[[Item], Result], Sequence[Item]]) -> list[Result]:
    worker, batch = worker_and_batch
    return [worker(item) for item in batch]


def process_context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    """The forkserver context with `preload` (module names) imported once in the server.

    The server is started once per process and kept: a later pool (the next split of a build) starts
    its workers in milliseconds. Preloads are only taken from the first call (the server then exists).
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["smdiff.data.worker_imports", *preload])
    return context


def ordered_map(
    worker: Callable[[Item], Result],
    items: Iterable[Item],
    workers: int | None,
    batch_size: int = 16,
) -> Iterator[Result]:
    """`map(worker, items)` in a pool of `workers` processes (None = all cores), results in order.

    `worker` must be a module-level function (it is pickled by reference); its module is preloaded
    in the forkserver. Items are consumed lazily, `batch_size` per task, at most 2 x `workers` tasks
    ahead of the consumer. `workers == 1` runs in this process with no pool.
    """
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        yield from map(worker, items)
        return
    with process_context([worker.__module__]).Pool(workers) as pool:
        pending: collections.deque = collections.deque()
        for batch in _batches(items, batch_size):
            pending.append(pool.apply_async(_map_batch, ((worker, batch),)))
            if len(pending) >= _IN_FLIGHT_PER_WORKER * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()
