"""Reading built TFDS datasets into numpy: one loader for every split the jobs read whole, and the
metadata a builder saved beside its data (`metadata.json`).

Datasets are read from their prepared files (`tfds.builder(name, data_dir=...)` finds them without the
builder's code), so no job imports a builder to read its data.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow_datasets as tfds


def dataset_dir(dataset: str, data_dir: str | None) -> str:
    """The version folder of a prepared dataset `name/config` (where its metadata.json lies)."""
    return tfds.builder(dataset, data_dir=data_dir).data_dir


def load_split(dataset: str, split: str, data_dir: str | None, fields: Sequence[str],
               where: Callable | None = None, limit: int | None = None) -> dict[str, np.ndarray]:
    """`fields` of every example of a split, in file order, each stacked into one array [n, ...].

    Text fields come back as str arrays. `where` (a tf predicate on an example) filters, `limit` keeps
    the first examples only. An empty result is an error naming the dataset and split.
    """
    builder = tfds.builder(dataset, data_dir=data_dir)
    examples = builder.as_dataset(split=split, shuffle_files=False)
    if where is not None:
        examples = examples.filter(where)
    if limit:
        examples = examples.take(limit)
    columns: dict[str, list] = {field: [] for field in fields}
    for example in tfds.as_numpy(examples):
        for field in fields:
            value = example[field]
            columns[field].append(value.decode() if isinstance(value, bytes) else value)
    if not columns[fields[0]]:
        raise ValueError(f"split {split!r} of {builder.info.full_name} is empty")
    return {field: np.stack(values) for field, values in columns.items()}


def window_keys(arrays: dict[str, np.ndarray]) -> list[tuple[str, int]]:
    """(song_id, start_chunk) of each loaded window: it names the window in melody_windows and
    melody_latents alike."""
    return list(zip(arrays["song_id"].tolist(), arrays["start_chunk"].tolist()))


def load_window_events(dataset: str, split: str, data_dir: str | None) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Events int [m, k * 32] of every window of a melody_windows split, and each one's (song_id, start_chunk)."""
    windows = load_split(dataset, split, data_dir, ["events", "song_id", "start_chunk"])
    return windows["events"].reshape(len(windows["events"]), -1), window_keys(windows)


def load_metadata(folder: str) -> dict:
    """The metadata a builder saved with a prepared dataset (statistics, scaling, build tally), from the
    dataset's version folder (`dataset_dir`)."""
    path = os.path.join(folder, "metadata.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: build the dataset first (see tfds_builders/)")
    with open(path) as f:
        return json.load(f)


def pianoroll_density(name: str = "pianorolls/bach_chorales", data_dir: str | None = None) -> float:
    """The train split's density of ones r of a built `pianorolls` dataset (the binomial process's r)."""
    return float(load_metadata(dataset_dir(name, data_dir))["density"])
