"""Train/validation/test splits by song, deterministic given a seed.

Songs are ordered by sha1(seed, song id) and cut by rank into the requested fractions, so a split
never holds windows of another split's song, the same seed and song set always give the same split,
and a tiny dataset still gets one song in every split that asks for a non-zero share.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

EMBEDDED_FRACTIONS = {"train": 0.90, "validation": 0.05, "test": 0.05}
# The paper's 99/1 split of LMD by file, plus a test share taken from the held-out side.
LMD_FRACTIONS = {"train": 0.99, "validation": 0.005, "test": 0.005}


def _rank_key(song_id: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{song_id}".encode()).hexdigest()


def assign_splits(song_ids: Iterable[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Maps every song id to a split name.

    Args:
      song_ids: distinct song ids.
      fractions: split name -> share (they must sum to 1); the first split takes what rounding leaves.
      seed: changes the assignment.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-6 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {dict(fractions)}")
    ordered = sorted(set(song_ids), key=lambda song_id: _rank_key(song_id, seed))
    names = list(fractions)
    counts = {name: round(fractions[name] * len(ordered)) for name in names[1:]}
    if len(ordered) >= len(names):
        counts = {name: max(count, 1 if fractions[name] > 0 else 0) for name, count in counts.items()}
    assignment, position = {}, 0
    for name in names[1:]:
        for song_id in ordered[position : position + counts[name]]:
            assignment[song_id] = name
        position += counts[name]
    for song_id in ordered[position:]:
        assignment[song_id] = names[0]
    return assignment


def songs_by_split(song_ids: Iterable[str], fractions: Mapping[str, float], seed: int) -> dict[str, list[str]]:
    """Split name -> its song ids, in the seeded hash order rather than the source's order, so that the first
    songs of a split (TFDS's --max_examples_per_split, a quick slice) are a sample of all collections."""
    assignment = assign_splits(song_ids, fractions, seed)
    by_split: dict[str, list[str]] = {name: [] for name in fractions}
    for song_id in sorted(assignment, key=lambda song_id: _rank_key(song_id, seed)):
        by_split[assignment[song_id]].append(song_id)
    return by_split
