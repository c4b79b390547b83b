"""Chunked, sharded, resumable output for jobs that make thousands of samples (t5x `infer` style).

A run of `num_samples` is cut into chunks of `chunk_size`; chunk `i` belongs to shard `i % num_shards`, so
any number of processes (or re-runs with another shard count) split the work without overlap. Each chunk
is a folder `<prefix>-00003-of-00016/` written under a temporary name and renamed into place only when
complete, with a `DONE.json` marker inside: a folder without the marker never exists under the final
name, so a killed run leaves at most a `.tmp` folder that the next run deletes and redoes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable

DONE_MARKER = "DONE.json"


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Samples [start, start + size) of a run, the `index`-th of `num_chunks` chunks."""

    index: int
    num_chunks: int
    start: int
    size: int

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.index:05d}-of-{self.num_chunks:05d}"


def plan_chunks(num_samples: int, chunk_size: int) -> list[Chunk]:
    """All chunks of a run; the last one may be smaller."""
    if num_samples <= 0 or chunk_size <= 0:
        raise ValueError(f"num_samples ({num_samples}) and chunk_size ({chunk_size}) must be positive")
    num_chunks = -(-num_samples // chunk_size)
    return [
        Chunk(i, num_chunks, i * chunk_size, min(chunk_size, num_samples - i * chunk_size))
        for i in range(num_chunks)
    ]


def shard_chunks(chunks: list[Chunk], shard_id: int, num_shards: int) -> list[Chunk]:
    """The chunks that shard `shard_id` of `num_shards` owns (round robin, so shards stay balanced)."""
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be in [0, {num_shards}), got {shard_id}")
    return [chunk for chunk in chunks if chunk.index % num_shards == shard_id]


def is_complete(out_dir: str, prefix: str, chunk: Chunk) -> bool:
    return os.path.exists(os.path.join(out_dir, chunk.name(prefix), DONE_MARKER))


def write_chunk(
    out_dir: str, prefix: str, chunk: Chunk, write_files: Callable[[str], dict], metadata: dict | None = None
) -> str:
    """Writes one chunk atomically and returns its folder.

    `write_files(folder)` writes the chunk's files into a temporary folder and returns a small dict that
    goes into the completion marker (counts, skips). The folder is renamed into place afterwards.
    """
    final = os.path.join(out_dir, chunk.name(prefix))
    partial = final + ".tmp"
    shutil.rmtree(partial, ignore_errors=True)  # a half-written chunk from a killed run
    os.makedirs(partial)
    summary = write_files(partial)
    marker = {**(metadata or {}), **dataclasses.asdict(chunk), **(summary or {})}
    with open(os.path.join(partial, DONE_MARKER), "w") as f:
        json.dump(marker, f, indent=1)
    shutil.rmtree(final, ignore_errors=True)  # an earlier folder without a marker cannot exist; be safe
    os.rename(partial, final)
    return final


def completed_chunks(out_dir: str, prefix: str) -> list[str]:
    """Folders of every completed chunk of `prefix` in `out_dir`, in chunk order."""
    if not os.path.isdir(out_dir):
        return []
    names = sorted(
        name for name in os.listdir(out_dir)
        if name.startswith(prefix + "-") and not name.endswith(".tmp")
        and os.path.exists(os.path.join(out_dir, name, DONE_MARKER))
    )
    return [os.path.join(out_dir, name) for name in names]
