"""Pieces that share a melody, so that a split by piece can keep each melody in one split.

Bach often harmonized one chorale tune several times, and music21's corpus holds such settings under different
BWV numbers (bwv39.7 and bwv194.6, bwv270 and bwv244.54, ...), sometimes in another key or with a varied
rhythm in one phrase. Two pieces are linked when their melody tracks share a run of `PHRASE_NOTES` consecutive notes
with the same intervals, durations and onset gaps (so transposition does not hide a shared phrase); the groups
are the connected components of that relation. A shorter run of `SHORT_PHRASE_NOTES` notes links them too when it
lasts `SHORT_PHRASE_QUARTERS` quarters or more (the same tune in long notes, e.g. bwv323 and bwv10.7).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smdiff.data.pianoroll import Piece

PHRASE_NOTES = 12  # a chorale line is ~8-12 notes: a shared 12-note run is the same tune, not a common figure
SHORT_PHRASE_NOTES, SHORT_PHRASE_QUARTERS = 8, 12  # 8 notes over 3 bars: long notes, not a passing figure


def melody_phrases(notes: np.ndarray, steps_per_quarter: int) -> set[tuple]:
    """Transposition-invariant note runs of a melody's note array [n, 3]: every run of PHRASE_NOTES notes, and
    of SHORT_PHRASE_NOTES notes lasting SHORT_PHRASE_QUARTERS quarters or more; each note after a run's first
    is (pitch - previous pitch, duration, onset - previous onset)."""
    notes = np.asarray(notes, np.int64).reshape(-1, 3)
    notes = notes[np.lexsort((-notes[:, 2], notes[:, 0]))]
    steps = [(int(a), int(b), int(c)) for a, b, c in
             zip(np.diff(notes[:, 2]), (notes[:, 1] - notes[:, 0])[1:], np.diff(notes[:, 0]))]
    phrases = {tuple(steps[i:i + PHRASE_NOTES - 1]) for i in range(len(notes) - PHRASE_NOTES + 1)}
    min_steps = SHORT_PHRASE_QUARTERS * steps_per_quarter
    for i in range(len(notes) - SHORT_PHRASE_NOTES + 1):
        if notes[i + SHORT_PHRASE_NOTES - 1, 1] - notes[i, 0] >= min_steps:
            phrases.add(tuple(steps[i:i + SHORT_PHRASE_NOTES - 1]))
    return phrases


def group_by_melody(pieces: Sequence[Piece], steps_per_quarter: int, melody_track: int = 0) -> dict[str, str]:
    """Piece name -> the name of its group (the alphabetically first piece sharing a phrase with it, transitively)."""
    parent = {piece.name: piece.name for piece in pieces}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    first_owner: dict[tuple, str] = {}
    for piece in pieces:
        for phrase in melody_phrases(piece.tracks[melody_track], steps_per_quarter):
            owner = first_owner.setdefault(phrase, piece.name)
            a, b = root(owner), root(piece.name)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smaller name stays the root, so the group name is stable
    return {piece.name: root(piece.name) for piece in pieces}
