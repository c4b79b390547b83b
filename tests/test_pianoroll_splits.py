"""The chorale split by melody (smdiff/data/tune_groups.py, pianoroll_segments.piece_splits): settings of one tune
never straddle splits, on hand-made pieces and on music21's whole corpus."""
import collections
import hashlib

import numpy as np
import pytest

from smdiff.data import chorales, tune_groups
from smdiff.data.pianoroll import Piece
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments, piece_splits

# Twelve quarter notes of "Ein feste Burg"'s opening line (4 steps per quarter), as (start, end, pitch).
TUNE = np.array([(4 * i, 4 * i + 4, p) for i, p in enumerate([72, 72, 72, 67, 69, 71, 72, 71, 69, 69, 67, 67])])
BASS = np.array([(0, 48, 48)])


def _piece(name, soprano, shift=0):
    return Piece(name=name, tracks=(soprano + [0, 0, shift], BASS), num_steps=48)


def test_a_transposed_setting_joins_its_tune_and_a_new_tune_does_not():
    other_tune = TUNE.copy()
    other_tune[5, 2] = 74  # one note changed: no 12-note run in common, and 8-note runs last only 8 quarters
    pieces = [_piece("b", TUNE), _piece("a", TUNE, shift=-3), _piece("c", other_tune)]
    assert tune_groups.group_by_melody(pieces, steps_per_quarter=4) == {"a": "a", "b": "a", "c": "c"}
    slow = TUNE * [3, 3, 1]  # the same first eight notes in dotted halves: 8 notes over 24 quarters
    slow_variant = slow.copy()
    slow_variant[8:, 2] += 1
    grouped = tune_groups.group_by_melody([_piece("x", slow), _piece("y", slow_variant)], steps_per_quarter=4)
    assert grouped["x"] == grouped["y"] == "x"
    splits = piece_splits(pieces, SegmentConfig(), by_melody=True)
    assert splits["a"] == splits["b"]


def _soprano_signature(soprano_roll: np.ndarray) -> str:
    """Transposition-invariant hash of a soprano roll [T, P]: its pitch contour relative to its lowest column."""
    active = soprano_roll.any(axis=0)
    return hashlib.md5(soprano_roll[:, np.argmax(active):].tobytes()).hexdigest()


@pytest.mark.slow  # parses the whole corpus once (~2 min on 2 cores) unless the chorale cache exists
def test_no_melody_crosses_splits_on_the_real_corpus():
    pieces, _ = chorales.load_chorales(4)
    config = SegmentConfig(transpositions=(0,))
    splits = piece_splits(pieces, config, by_melody=True)
    for first, second in [("bwv39.7", "bwv194.6"), ("bwv270", "bwv244.54"), ("bwv114.7", "bwv258"),
                          ("bwv323", "bwv10.7")]:
        assert splits[f"bach/{first}"] == splits[f"bach/{second}"], (first, second)
    counts = collections.Counter(splits.values())
    assert 0.7 < counts["train"] / len(pieces) < 0.9 and counts["test"] > 20 and counts["validation"] > 20

    pitch_range = choose_pitch_range(pieces, config)
    owner = {}  # soprano signature of a segment -> the split it was first seen in
    skips = collections.Counter()
    for piece in pieces:
        split = splits[piece.name]
        for key, example in piece_segments(piece, split, pitch_range, config, skips):
            if not example["tracks"][0].any():
                continue
            signature = _soprano_signature(example["tracks"][0])
            assert owner.setdefault(signature, (split, key))[0] == split, (key, owner[signature])
