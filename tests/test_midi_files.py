"""read_midi against note_seq's stock reader: the same NoteSequence, to the bit, without pretty_midi's
per-tick table."""
import io
import pathlib

import mido
import pytest
from note_seq import midi_io

from smdiff.data import midi_files

MIDI_DIR = pathlib.Path(__file__).parent / "data" / "midi"
TICKS_PER_QUARTER = 10_080  # what music21 writes
CHORALES = ("bach/bwv269", "bach/bwv347")


def assert_same_sequence(data: bytes) -> None:
    """read_midi(data) equals note_seq's midi_to_note_sequence(data) field by field and byte for byte."""
    stock = midi_io.midi_to_note_sequence(data)
    ours = midi_files.read_midi(data, "song")
    assert ours.id == ours.filename == "song"
    ours.id = ours.filename = ""
    key = lambda n: (n.start_time, n.end_time, n.pitch, n.velocity, n.instrument, n.program, n.is_drum)
    assert [key(n) for n in ours.notes] == [key(n) for n in stock.notes]
    assert [(t.time, t.qpm) for t in ours.tempos] == [(t.time, t.qpm) for t in stock.tempos]
    assert ([(t.time, t.numerator, t.denominator) for t in ours.time_signatures]
            == [(t.time, t.numerator, t.denominator) for t in stock.time_signatures])
    assert [(k.time, k.key, k.mode) for k in ours.key_signatures] == [(k.time, k.key, k.mode) for k in stock.key_signatures]
    assert ours.total_time == stock.total_time
    assert ours.SerializeToString() == stock.SerializeToString()


def tempo_changes_midi(path: pathlib.Path) -> None:
    """Writes a two-instrument MIDI file at 10,080 ticks per quarter with tempo changes at odd ticks
    (two on neighbouring ticks, one repeating the tempo, which pretty_midi drops), notes inside, across
    and on the changes, and time and key signatures after them."""
    changes = [(0, 120), (37_811, 97), (37_816, 143.5), (1_000_003, 61), (1_500_000, 61), (2_345_679, 200)]
    tracks = [[(tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))) for tick, bpm in changes]
              + [(0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
                 (1_000_003, mido.MetaMessage("time_signature", numerator=3, denominator=8)),
                 (2_400_001, mido.MetaMessage("key_signature", key="Bb"))], [], []]  # absolute ticks
    notes = [(17 + i * 41_333, 30_011 + 997 * i, 48 + i % 30, 40 + i, i % 2) for i in range(60)]
    notes.append((1_000_003, 2_345_679 - 1_000_003, 90, 100, 0))  # starts and ends on a change
    notes.append((37_813, 20, 91, 100, 1))  # starts between the neighbouring changes
    for start, length, pitch, velocity, channel in notes:
        tracks[1 + channel] += [(start, mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)),
                                (start + length, mido.Message("note_off", note=pitch, channel=channel))]
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    for events in tracks:
        events.sort(key=lambda event: event[0])
        ticks = [tick for tick, _ in events]
        midi.tracks.append(mido.MidiTrack(
            message.copy(time=tick - last) for tick, last, (_, message) in zip(ticks, [0] + ticks, events)))
    midi.save(path)


def test_same_sequence_as_note_seq_on_a_file_with_tempo_changes_at_10080_ticks(tmp_path):
    tempo_changes_midi(tmp_path / "tempi.mid")
    data = (tmp_path / "tempi.mid").read_bytes()
    sequence = midi_files.read_midi(data, "tempi")
    assert sequence.ticks_per_quarter == TICKS_PER_QUARTER
    assert [t.qpm for t in sequence.tempos] == pytest.approx([120, 97, 143.5, 61, 200], rel=1e-5)  # repeat dropped
    # Notes in every tempo segment, so a lookup into the wrong segment shows up.
    tempo_seconds = [t.time for t in sequence.tempos]
    assert all(any(a < n.start_time < b for n in sequence.notes) for a, b in zip(tempo_seconds, tempo_seconds[1:]))
    assert any(n.start_time > tempo_seconds[-1] for n in sequence.notes)
    assert_same_sequence(data)


@pytest.mark.parametrize("name", CHORALES)
def test_same_sequence_as_note_seq_on_music21_scores(tmp_path, name):
    import music21

    path = tmp_path / "score.mid"
    music21.corpus.parse(name).write("midi", fp=str(path))
    data = path.read_bytes()
    assert mido.MidiFile(file=io.BytesIO(data)).ticks_per_beat == TICKS_PER_QUARTER
    assert_same_sequence(data)


def test_same_sequence_as_note_seq_on_the_test_folk_files():
    paths = sorted(MIDI_DIR.rglob("*.mid"))
    assert len(paths) == 10
    for path in paths:
        assert_same_sequence(path.read_bytes())


def test_unreadable_bytes_are_a_midi_read_error():
    with pytest.raises(midi_files.MidiReadError, match="corrupt_midi"):
        midi_files.read_midi(b"MThd" + b"\x00" * 10, "bad")
    with pytest.raises(midi_files.MidiReadError, match="not_midi"):
        midi_files.read_midi(b"RIFF", "bad")
