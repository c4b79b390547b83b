"""Chorales in a common key (C major / A minor): the shift, whole pieces moved by it, and harmonizing a soprano in
any key with a common-key model (to C/a and back), on real chorales."""
import collections
import dataclasses

import jax
import numpy as np
import pytest

from smdiff.data import chorales
from smdiff.data.keys import MODES, Key, common_key_shift, estimate_key
from smdiff.data.pianoroll import PitchRange
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments, to_common_key
from smdiff.evaluation.harmony import melody_key, voices_from_tracks
from smdiff.generators import common_key
from pianoroll_builds import build_on_slice

COMMON = (Key(0, "major"), Key(9, "minor"))
# Real chorales in ten keys by the estimate (G, E, F, D, Ab, A, C major; F, A, D minor).
NAMES = ("bach/bwv269", "bach/bwv347", "bach/bwv267", "bach/bwv281", "bach/bwv40.8", "bach/bwv248.12-2",
         "bach/bwv38.6", "bach/bwv244.10", "bach/bwv253", "bach/bwv254", "bach/bwv255", "bach/bwv256")


@pytest.fixture(scope="module")
def pieces():
    parsed = [chorales.parse_chorale(name, steps_per_quarter=4) for name in NAMES]
    return [piece for piece in parsed if isinstance(piece, chorales.Piece)]


def test_shift_is_the_smallest_move_to_c_major_or_a_minor():
    for mode in MODES:
        for tonic in range(12):
            shift = common_key_shift(Key(tonic, mode))
            assert -6 <= shift <= 5
            assert Key(tonic, mode).transposed(shift) in COMMON
    assert common_key_shift(Key(7, "major")) == 5  # G major up a fourth, not down a fifth
    assert common_key_shift(Key(2, "major")) == -2
    assert common_key_shift(Key(6, "major")) == -6  # the tritone goes down
    assert common_key_shift(Key(4, "minor")) == 5  # E minor -> A minor


def test_whole_pieces_move_to_the_common_key_by_one_shift(pieces):
    keys = {estimate_key(piece.merged_notes()) for piece in pieces}
    assert len(keys) >= 6 and {key.mode for key in keys} == set(MODES)  # the test sees varied keys
    for piece in pieces:
        moved, shift = to_common_key(piece)
        assert -6 <= shift <= 5
        assert estimate_key(moved.merged_notes()) in COMMON, piece.name
        for track, moved_track in zip(piece.tracks, moved.tracks, strict=True):
            np.testing.assert_array_equal(moved_track - track, np.broadcast_to([0, 0, shift], track.shape))
        assert moved.num_steps == piece.num_steps


@pytest.fixture(scope="module")
def sopranos(pieces):
    """(soprano rolls [n, T, P] of the pieces' segments in their own keys, their pitch range, the common-key
    range of the moved pieces), as the two datasets (bach_chorales, bach_chorales_c) choose them."""
    source = choose_pitch_range(pieces, SegmentConfig())
    common = SegmentConfig(transpositions=(0,))
    model_range = choose_pitch_range([to_common_key(piece)[0] for piece in pieces], common)
    skips = collections.Counter()
    segments = [example["tracks"][0] for piece in pieces
                for _, example in piece_segments(piece, "test", source, common, skips)]
    return np.stack(segments).astype(np.float32), source, model_range


def test_sopranos_go_to_the_common_key_inside_the_model_range_and_back_exactly(sopranos):
    soprano, source, model_range = sopranos
    shifts = common_key.common_key_shifts(soprano, source, model_range)
    moved, dropped = common_key.transpose_rolls(soprano, shifts, source, model_range)
    assert dropped == 0 and moved.shape == soprano.shape[:2] + (model_range.num_pitches,)
    np.testing.assert_array_equal(moved.sum(axis=(1, 2)), soprano.sum(axis=(1, 2)))  # every cell kept
    for roll in moved:
        assert melody_key(voices_from_tracks(roll[None], model_range.lowest_pitch)) in COMMON
    assert len(set(shifts.tolist())) >= 4  # segments in several keys
    back, dropped = common_key.transpose_rolls(moved, -shifts, model_range, source)
    assert dropped == 0
    np.testing.assert_array_equal(back, soprano)


def test_a_soprano_that_leaves_the_model_range_moves_an_octave_more(sopranos):
    soprano, source, model_range = sopranos
    shifts = common_key.common_key_shifts(soprano, source, model_range)
    highest = voices_from_tracks(soprano[:1], source.lowest_pitch).max()
    narrow = dataclasses.replace(model_range, num_pitches=highest + shifts[0] - model_range.lowest_pitch)  # 1 short
    shifted = common_key.common_key_shifts(soprano[:1], source, narrow)
    assert shifted[0] == shifts[0] - 12
    with pytest.raises(ValueError, match="does not fit"):
        common_key.common_key_shifts(soprano[:1], source, dataclasses.replace(narrow, num_pitches=4))


class _OctaveBelow:
    """A stand-in generator: adds the melody an octave lower (a voice with known pitches) and records its input."""

    def harmonize(self, rng, melody):
        self.melody = np.asarray(melody)
        return np.maximum(self.melody, np.roll(self.melody, -12, axis=-1))


def test_harmonize_gives_the_model_the_common_key_and_returns_the_soprano_exactly(sopranos):
    soprano, source, model_range = sopranos
    generator = _OctaveBelow()
    rolls, shifts, dropped = common_key.harmonize(generator, jax.random.PRNGKey(0), soprano, source, model_range)
    assert dropped == 0 and rolls.shape == soprano.shape
    for roll in generator.melody:
        assert melody_key(voices_from_tracks(roll[None], model_range.lowest_pitch)) in COMMON
    np.testing.assert_array_equal(rolls * soprano, soprano)  # the given soprano, exactly, in its own key
    lower = np.roll(soprano, -12, axis=-1)
    np.testing.assert_array_equal(rolls, np.maximum(soprano, lower))  # the added voice, moved back


@pytest.mark.slow
def test_built_common_key_dataset_keeps_the_splits_and_moves_each_piece(pieces, tmp_path, monkeypatch):
    """bach_chorales and bach_chorales_c built on the same real chorales (wider validation/test fractions): the
    same pieces and segments in each split, each segment's tracks those of bach_chorales moved by its piece's
    shift, stored key C major / A minor."""
    built = build_on_slice(pieces, ("bach_chorales", "bach_chorales_c"), lambda config: dataclasses.replace(
        config.segment, validation_fraction=0.3, test_fraction=0.3), str(tmp_path), monkeypatch)
    plain, common = built["bach_chorales"], built["bach_chorales_c"]
    ranges = {name: PitchRange(built[name]["metadata"]["lowest_pitch"], built[name]["metadata"]["num_pitches"])
              for name in built}
    assert common["metadata"]["common_key"] and not plain["metadata"]["common_key"]
    shifts = {piece.name.encode(): to_common_key(piece)[1] for piece in pieces}
    for split in ("train", "validation", "test"):
        originals = [e for e in plain[split] if e["transpose"] == 0]
        assert len(common[split]) == len(originals) > 0, split
        for moved, original in zip(common[split], originals):
            assert (moved["piece"], moved["start_step"]) == (original["piece"], original["start_step"])
            assert Key(int(moved["key_tonic"]), MODES[int(moved["key_mode"])]) in COMMON
            expected, dropped = common_key.transpose_rolls(original["tracks"], [shifts[moved["piece"]]] * 4,
                                                           ranges["bach_chorales"], ranges["bach_chorales_c"])
            assert dropped == 0
            np.testing.assert_array_equal(moved["tracks"], expected)
