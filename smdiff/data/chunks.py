"""Cutting melodies into 2-bar chunks and songs into windows of k consecutive chunks.

A chunk is 32 steps (2 bars of 16 steps). Chunks are consecutive and non-overlapping from the first
bar of a melody; a final single bar is dropped. An all-rest chunk (no note onset) gets no latent
downstream, so the chunk dataset leaves it out and a window holding one is dropped (both counted).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from smdiff.data.melody import NOTE_OFF, STEPS_PER_BAR

CHUNK_STEPS = 2 * STEPS_PER_BAR


def melody_chunks(melody: np.ndarray) -> np.ndarray:
    """Consecutive 2-bar chunks of a melody: int32 [steps] -> int32 [num_chunks, 32]."""
    num_chunks = len(melody) // CHUNK_STEPS
    return np.asarray(melody[: num_chunks * CHUNK_STEPS], np.int32).reshape(num_chunks, CHUNK_STEPS)


def all_rest(chunks: np.ndarray) -> np.ndarray:
    """Whether each chunk has no note onset: [..., 32] -> bool [...]."""
    return ~np.any(chunks > NOTE_OFF, axis=-1)


def song_windows(chunks: np.ndarray, window_chunks: int, stride: int) -> Iterator[tuple[int, np.ndarray]]:
    """Windows of `window_chunks` consecutive chunks every `stride` chunks, skipping any holding an
    all-rest chunk.

    Args:
      chunks: int32 [num_chunks, 32], the chunks of one melody.
    Yields:
      (start chunk index, int32 [window_chunks, 32]).
    """
    if window_chunks < 1 or stride < 1:
        raise ValueError(f"window_chunks and stride must be >= 1, got {window_chunks} and {stride}")
    rests = all_rest(chunks)
    for start in range(0, len(chunks) - window_chunks + 1, stride):
        if not rests[start : start + window_chunks].any():
            yield start, chunks[start : start + window_chunks]


def count_windows(num_chunks: int, window_chunks: int, stride: int) -> int:
    """How many window positions a melody of `num_chunks` chunks has (before dropping rests)."""
    return max(0, (num_chunks - window_chunks) // stride + 1)
