"""Piano rolls from real music: chorale parsing, notes <-> roll, MIDI round trip, segments, the builder."""
import collections
import os

import numpy as np
import pytest

from smdiff.data import chorales, midi_pieces
from smdiff.data.keys import Key, estimate_key
from smdiff.data.pianoroll import PitchRange, midi_file_to_roll, notes_to_roll, roll_to_midi_file, roll_to_notes
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments, roll_statistics, split_of

MIDI_DIR = os.path.join(os.path.dirname(__file__), "data", "midi")


@pytest.fixture(scope="module")
def two_chorales():
    pieces = [chorales.parse_chorale(name, steps_per_quarter=4) for name in ("bach/bwv269", "bach/bwv347")]
    assert all(isinstance(piece, chorales.Piece) for piece in pieces), pieces
    return pieces


def test_chorale_keeps_four_voices_in_order(two_chorales):
    piece = two_chorales[0]
    assert len(piece.tracks) == 4
    mean_pitch = [track[:, 2].mean() for track in piece.tracks]
    assert mean_pitch == sorted(mean_pitch, reverse=True)  # soprano above alto above tenor above bass
    assert piece.tracks[0][:2].tolist() == [[0, 4, 67], [4, 12, 67]]  # bwv269 opens on G4, a quarter then a half
    assert estimate_key(piece.merged_notes()) == Key(7, "major")  # G major, as music21's analysis says


def test_roll_to_notes_inverts_notes_to_roll(two_chorales):
    piece = two_chorales[1]
    pitch_range = PitchRange.covering(*piece.pitch_bounds())
    roll = notes_to_roll(piece.merged_notes(), piece.num_steps, pitch_range)
    assert roll.dtype == np.uint8 and roll.shape == (piece.num_steps, pitch_range.num_pitches)
    again = notes_to_roll(roll_to_notes(roll, pitch_range.lowest_pitch), piece.num_steps, pitch_range)
    np.testing.assert_array_equal(again, roll)
    # A held note is one note; two voices sounding the same pitch become one cell.
    notes = roll_to_notes(np.array([[1, 0], [1, 0], [0, 1], [1, 1]]), lowest_pitch=60)
    assert notes.tolist() == [[0, 2, 60], [2, 4, 61], [3, 4, 60]]
    with pytest.raises(ValueError, match="outside"):
        notes_to_roll(np.array([[0, 4, 20]]), 8, pitch_range)


def test_midi_round_trip_of_rolls(two_chorales, tmp_path):
    piece = two_chorales[0]
    pitch_range = PitchRange.covering(*piece.pitch_bounds())
    roll = notes_to_roll(piece.merged_notes(), piece.num_steps, pitch_range)
    path = str(tmp_path / "chorale.mid")
    roll_to_midi_file(roll, pitch_range, steps_per_quarter=4, path=path)
    np.testing.assert_array_equal(midi_file_to_roll(path, pitch_range, steps_per_quarter=4), roll)


def test_pitch_range_fits_the_unet():
    pitch_range = PitchRange.covering(36, 81)  # the chorales' range
    assert pitch_range.num_pitches == 48 and pitch_range.lowest_pitch <= 36 and pitch_range.highest_pitch >= 81
    assert PitchRange.covering(30, 87).num_pitches % 8 == 0
    with pytest.raises(ValueError):
        PitchRange.covering(60, 50)


def test_segments_transpose_only_the_train_split(two_chorales):
    config = SegmentConfig(transpositions=(-2, 0, 2))
    pitch_range = choose_pitch_range(two_chorales, config)
    piece = two_chorales[0]
    skips = collections.Counter()
    train = list(piece_segments(piece, "train", pitch_range, config, skips))
    test = list(piece_segments(piece, "test", pitch_range, config, skips))
    assert len(train) == 3 * len(test) > 0
    assert {example["transpose"] for _, example in train} == {-2, 0, 2}
    assert {example["transpose"] for _, example in test} == {0}
    _, first = test[0]
    assert first["roll"].shape == (64, pitch_range.num_pitches) and first["tracks"].shape == (4, 64, pitch_range.num_pitches)
    np.testing.assert_array_equal(first["roll"], first["tracks"].max(axis=0))
    shifted = next(example for _, example in train if example["transpose"] == 2 and example["start_step"] == 0)
    np.testing.assert_array_equal(shifted["roll"][:, 2:], first["roll"][:, :-2])  # up two semitones
    assert (shifted["key_tonic"] - first["key_tonic"]) % 12 == 2
    assert len({key for key, _ in train}) == len(train)  # unique TFDS keys
    stats = roll_statistics(example["roll"] for _, example in test)
    assert 0.03 < stats["density"] < 0.15 and stats["max_polyphony"] <= 4 and stats["mean_polyphony"] > 3


def test_splits_are_by_piece_and_stable():
    config = SegmentConfig()
    names = [f"bach/bwv{i}" for i in range(300)]
    splits = collections.Counter(split_of(name, config) for name in names)
    assert 0.7 < splits["train"] / 300 < 0.9 and splits["validation"] and splits["test"]
    assert split_of("bach/bwv269", config) == split_of("bach/bwv269", config)


def test_bad_midi_is_a_counted_skip(tmp_path):
    assert midi_pieces.midi_bytes_to_piece("broken.mid", b"not a midi file", 4) == "not_midi"
    with pytest.raises(FileNotFoundError):
        midi_pieces.load_midi_pieces(str(tmp_path / "missing"))


@pytest.mark.slow
def test_builder_on_a_midi_folder(tmp_path):
    import tensorflow_datasets as tfds

    from smdiff.data.tfds_io import load_metadata
    from tfds_builders.pianorolls import Pianorolls
    from tfds_builders.pianorolls.pianorolls import PianorollConfig

    config = PianorollConfig(name="midi_dir_test", source="midi_dir", num_tracks=1,
                             segment=SegmentConfig(segment_quarters=8, stride_quarters=8, transpositions=(0, 1),
                                                   validation_fraction=0.3, test_fraction=0.3))
    builder = Pianorolls(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=MIDI_DIR))
    stats = load_metadata(builder.data_dir)
    assert stats["num_pitches"] % 8 == 0 and 0 < stats["density"] < 0.2
    # Every file is either a piece of one split or a counted skip with its reason.
    assert sum(stats["pieces_per_split"].values()) + sum(stats["skipped_pieces"].values()) == 10
    assert sum(stats["pieces_per_split"].values()) >= 8
    example = next(iter(tfds.as_numpy(builder.as_dataset(split="train"))))
    assert example["roll"].shape == (32, stats["num_pitches"]) and example["tracks"].shape == (1, 32, stats["num_pitches"])
    assert {int(e["transpose"]) for e in tfds.as_numpy(builder.as_dataset(split="test"))} == {0}
    # Split by piece in the written dataset: no piece has segments in two splits, and every split has pieces.
    pieces = {split: {e["piece"] for e in tfds.as_numpy(builder.as_dataset(split=split))}
              for split in ("train", "validation", "test")}
    assert all(pieces.values()), pieces
    assert not (pieces["train"] & pieces["validation"] or pieces["train"] & pieces["test"]
                or pieces["validation"] & pieces["test"]), pieces
    assert sum(len(names) for names in pieces.values()) == sum(stats["pieces_per_split"].values())
