"""Chunked, sharded, resumable output for jobs that make thousands of samples (t5x `infer` style).

A run of `num_samples` is cut into chunks of `chunk_size`; chunk `i` belongs to shard `i % num_shards`
and to no other, so the processes of a job (shard = jax process index, num_shards = process count) never
write the same chunk, and a re-run with another process count splits the remaining work without overlap.

Each chunk is a folder `<prefix>-00003-of-00016/` under the output folder, a local path or an object-store
URL (`gs://bucket/samples`; all I/O through etils.epath). Completion does not rely on renaming a folder,
which object stores cannot do atomically (a "rename" there copies and deletes object by object):

1. the chunk's files are written straight into its final folder (a leftover folder without a marker,
   from a process killed while writing, is emptied first);
2. the completion marker `DONE.json` is written LAST, as one object: an object store publishes an object
   whole when its upload ends or not at all, and on a local disk the marker is written under a temporary
   name and renamed (a one-file POSIX rename is atomic);
3. a chunk is complete if and only if its marker exists and parses; readers ignore folders without one.

So a process killed at any moment leaves at most one chunk folder without a marker, which the next run
empties and makes again; a chunk with a marker is never made again.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from collections.abc import Callable

import jax
import numpy as np
from absl import logging
from etils import epath

from smdiff.training.paths import is_url, run_path

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


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The completion marker of a chunk folder; None when the chunk is not complete."""
    path = run_path(folder) / DONE_MARKER
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_complete(out_dir: str | os.PathLike, prefix: str, chunk: Chunk) -> bool:
    return read_marker(run_path(out_dir) / chunk.name(prefix)) is not None


def write_chunk(out_dir: str | os.PathLike, prefix: str, chunk: Chunk, write_files: Callable[[epath.Path], dict],
                metadata: dict | None = None) -> epath.Path:
    """Writes one chunk (files first, marker last; see the module docstring) and returns its folder.

    `write_files(folder)` writes the chunk's files into `folder` (an epath.Path) and returns a small dict
    that goes into the completion marker (counts, timings).
    """
    folder = run_path(out_dir) / chunk.name(prefix)
    if folder.exists():  # a chunk a killed process left half-written (complete ones are never rewritten)
        folder.rmtree()
    folder.mkdir(parents=True)
    summary = write_files(folder)
    marker = {**(metadata or {}), **dataclasses.asdict(chunk), **(summary or {})}
    _publish(folder / DONE_MARKER, json.dumps(marker, indent=1))
    logging.info("completed chunk %s", folder.name)
    return folder


def made_by() -> dict:
    """What a chunk's marker records of who made it: this jax process and the local devices its
    generators deal their row groups over (`smdiff.training.sharding`)."""
    return {"process_index": jax.process_index(), "local_devices": [device.id for device in jax.local_devices()]}


def _publish(path: epath.Path, text: str) -> None:
    """Writes `path` so that a reader sees all of it or nothing (see the module docstring)."""
    if is_url(path):
        path.write_text(text)  # one object: visible only once its upload has finished
        return
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def completed_chunks(out_dir: str | os.PathLike, prefix: str) -> list[epath.Path]:
    """Folders of every completed chunk of `prefix` in `out_dir`, in chunk order."""
    root = run_path(out_dir)
    if not root.is_dir():
        return []
    folders = sorted((path for path in root.iterdir() if path.name.startswith(prefix + "-")
                      and not path.name.endswith(".tmp")), key=lambda path: path.name)
    return [folder for folder in folders if read_marker(folder) is not None]


def check_same_run(out_dir: str | os.PathLike, prefixes: tuple[str, ...] | list[str], metadata: dict) -> None:
    """Stops a run that would add chunks to an output folder made with other settings (the chunks would
    mix two runs): compares `metadata` with the marker of the first completed chunk of any of `prefixes`.

    Raises:
      ValueError: naming each setting that differs.
    """
    for prefix in prefixes:
        folders = completed_chunks(out_dir, prefix)
        if not folders:
            continue
        marker = read_marker(folders[0])
        differing = [f"{name}: {marker[name]!r} there, {value!r} now" for name, value in metadata.items()
                     if name in marker and marker[name] != value]
        if differing:
            raise ValueError(f"{out_dir} holds chunks made with other settings ({'; '.join(differing)}); use "
                             "another output folder or the same settings")
        return


def save_npz(path: epath.Path, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez_compressed` to any epath, byte for byte the same for the same arrays (np.savez stamps
    each member with the time of writing; here every member has the zip format's earliest date), so the
    chunks of two runs can be compared as files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    path.write_bytes(buffer.getvalue())


def load_npz(path: epath.Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file on any epath."""
    with np.load(io.BytesIO(path.read_bytes())) as archive:
        return {name: archive[name] for name in archive.files}
