"""The harmonization figure command (benchmarks/figure_harmonization.py) on real chorales from music21's corpus:
the model's rolls are pianoroll-eval's chunks, the rule and Bach rows keep the given soprano, and every MIDI file
reads back to its rolls' notes, voice by voice."""
import collections

import jax
import matplotlib.image
import numpy as np
import pytest
from note_seq import midi_io

from benchmarks import figure_harmonization as figure
from smdiff import pianoroll_eval
from smdiff.data import chorales
from smdiff.data.pianoroll import note_sequence_to_notes, roll_to_notes
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments
from smdiff.generators.pianoroll import PianorollGenerator
from smdiff.models.unet import UNet, UNetConfig
from smdiff.sampling import shards
from smdiff.tasks.binomial import BinomialTask

CHORALES = ("bach/bwv269", "bach/bwv347")
SEGMENTS = SegmentConfig(segment_quarters=8, stride_quarters=8)
TINY = UNetConfig(base_width=8, width_multipliers=(1, 2, 2), blocks_per_level=1, attention_heads=2,
                  attention_head_width=8, num_steps=20, conditioned=True)
FIELDS = ("roll", "tracks", "key_tonic", "key_mode", "piece")


@pytest.fixture(scope="module")
def test_split():
    """The first 4 test segments of two real chorales, voice channels (roll [4, 32, P, 4], tracks [4, 4, 32, P]),
    and their pitch range."""
    pieces = [chorales.parse_chorale(name, SEGMENTS.steps_per_quarter) for name in CHORALES]
    assert all(isinstance(piece, chorales.Piece) for piece in pieces), pieces
    pitch_range = choose_pitch_range(pieces, SEGMENTS)
    examples = [example for piece in pieces for _, example in
                piece_segments(piece, "test", pitch_range, SEGMENTS, collections.Counter(), True)][:4]
    assert len(examples) == 4
    return {field: np.stack([example[field] for example in examples]) for field in FIELDS}, pitch_range


def _read_voices(path: str) -> list[np.ndarray]:
    """A written MIDI file's notes per named track, in VOICES order: [note array [n, 3]] x 4."""
    ns = midi_io.midi_file_to_note_sequence(path)
    names = {info.instrument: info.name for info in ns.instrument_infos}
    assert sorted(names.values()) == sorted(figure.VOICES), names
    voices = {}
    for instrument, name in names.items():
        part = type(ns)()
        part.CopyFrom(ns)
        del part.notes[:]
        part.notes.extend(note for note in ns.notes if note.instrument == instrument)
        notes = note_sequence_to_notes(part, SEGMENTS.steps_per_quarter)
        voices[name] = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
    return [voices[name] for name in figure.VOICES]


def test_model_rolls_are_pianoroll_evals_and_every_midi_reads_back_to_its_rolls(test_split, tmp_path):
    test, pitch_range = test_split
    rolls = test["roll"].astype(np.float32)
    task = BinomialTask(model=UNet(TINY), density=float(rolls.mean()), loss_type="bce")
    params = task.init(jax.random.PRNGKey(0), {"roll": rolls[:2]})  # untrained: the routing is under test
    generator = PianorollGenerator(task, params, rolls.shape[1:], num_sampling_steps=3, conditioning="model")
    segments, chunk_size = [3, 0], 2  # in chunks 1 and 0
    model = figure.model_harmonizations(generator, test, segments, chunk_size, seed=1,
                                        lowest_pitch=pitch_range.lowest_pitch)
    # pianoroll-eval's harmonization chunks of 2 (`generate` makes each with `chunk_rolls`), channels as voices.
    conditions = pianoroll_eval.task_conditions(test)
    chunks = shards.plan_chunks(len(rolls), chunk_size)
    evaluated = np.concatenate([pianoroll_eval.chunk_rolls(generator, "harmonization", conditions, chunk, seed=1)
                                for chunk in chunks[:2]])  # segments 0-3 [4, T, P, 4]
    np.testing.assert_array_equal(model, np.moveaxis(evaluated[segments], -1, 1))
    assert not np.array_equal(evaluated[1:3, ..., 1:], evaluated[[0, 3], ..., 1:])  # the order is tested

    systems = figure.harmonizations(test, segments, SEGMENTS.steps_per_quarter, pitch_range.lowest_pitch, model)
    assert list(systems) == ["model", "rule", "bach"]
    np.testing.assert_array_equal(systems["bach"], test["tracks"][segments].astype(bool))
    for tracks in systems.values():  # the given soprano in every row; the others harmonize it
        assert tracks.shape == (2, 4, *test["tracks"].shape[2:]) and tracks.dtype == bool
        np.testing.assert_array_equal(tracks[:, 0], systems["bach"][:, 0])
        assert tracks[:, 1:].any()

    paths = figure.write_midi(systems, segments, pitch_range, SEGMENTS.steps_per_quarter, str(tmp_path / "midi"))
    assert [path.rsplit("/", 1)[1] for path in paths] == [
        f"{segment:03d}_{system}.mid" for system in systems for segment in segments]
    for path, (system, i) in zip(paths, [(system, i) for system in systems for i in range(len(segments))]):
        read = _read_voices(path)
        for voice, (notes, track) in enumerate(zip(read, systems[system][i])):
            np.testing.assert_array_equal(notes, roll_to_notes(track, pitch_range.lowest_pitch),
                                          err_msg=f"{path} {figure.VOICES[voice]}")

    figure.draw(systems, segments, list(test["piece"][segments]), pitch_range.lowest_pitch,
                str(tmp_path / "figure.png"))
    image = matplotlib.image.imread(tmp_path / "figure.png")
    assert image.ndim == 3 and image.std() > 0  # not blank


class _MergedBach:
    """A 'model' of merged rolls [n, T, P] that returns Bach's merged rolls of the segments it is asked about (one
    chunk, all of them)."""

    def __init__(self, merged: np.ndarray, soprano: np.ndarray):
        self.merged, self.soprano = merged, soprano

    def complete(self, rng, known, given):
        del rng, given
        np.testing.assert_array_equal(known, self.soprano)  # pianoroll-eval's merged harmonization: the soprano given
        return self.merged


def test_merged_model_voices_are_read_by_pitch_order_under_the_soprano(test_split):
    test, pitch_range = test_split
    merged_test = {**test, "roll": test["roll"].max(axis=-1)}  # [4, T, P]
    merged = merged_test["roll"].astype(np.float32)
    model = figure.model_harmonizations(_MergedBach(merged, test["tracks"][:, 0]), merged_test, [1, 2],
                                        chunk_size=4, seed=0, lowest_pitch=pitch_range.lowest_pitch)
    assert model.shape == (2, 4, *merged.shape[1:])
    np.testing.assert_array_equal(model[:, 0], test["tracks"][[1, 2], 0].astype(bool))
    # Bach's chorales have at most four notes a step and nothing above the soprano: every cell kept.
    np.testing.assert_array_equal(model.max(axis=1), merged[[1, 2]].astype(bool))
