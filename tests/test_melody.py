"""Magenta's melody-extraction rules on hand-built NoteSequences, the event encoding and its round trip."""
import pathlib

import numpy as np
import pytest
from note_seq import midi_io
from note_seq.protobuf import music_pb2

from smdiff.data import melody
from smdiff.data.chunks import all_rest, count_windows, melody_chunks, song_windows
from smdiff.data.melody import NO_EVENT, NOTE_OFF, MelodyRules, extract_melodies

STEP = 0.125  # seconds per 16th note at 120 qpm


def make_sequence(notes, time_signatures=((0.0, 4, 4),), tempos=((0.0, 120.0),)):
    """notes: (pitch, start_step, end_step[, instrument[, is_drum[, program]]]) at 120 qpm."""
    ns = music_pb2.NoteSequence(ticks_per_quarter=220)
    for time, numerator, denominator in time_signatures:
        ns.time_signatures.add(time=time, numerator=numerator, denominator=denominator)
    for time, qpm in tempos:
        ns.tempos.add(time=time, qpm=qpm)
    for pitch, start, end, *rest in notes:
        instrument, is_drum, program = (list(rest) + [0, False, 0][len(rest):])[:3]
        ns.notes.add(pitch=pitch, velocity=80, start_time=start * STEP, end_time=end * STEP,
                     instrument=instrument, is_drum=is_drum, program=program)
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    return ns


def cls(pitch):
    return pitch - 19


def test_single_note_encoding_note_off_and_bar_padding():
    result = extract_melodies(make_sequence([(60, 0, 4), (62, 6, 8)]))
    expected = np.zeros(16, np.int32)
    expected[[0, 4, 6]] = [cls(60), NOTE_OFF, cls(62)]  # final NOTE_OFF stripped, padded to a bar
    assert len(result.melodies) == 1
    np.testing.assert_array_equal(result.melodies[0], expected)


def test_polyphony_keeps_highest_note_and_later_onsets_cut_the_sounding_note():
    # A chord at step 0 (60, 64, 67): only 67 kept; 72 at step 2 cuts it; 48 at step 4 inside 72 cuts it.
    result = extract_melodies(make_sequence([(60, 0, 8), (64, 0, 8), (67, 0, 8), (72, 2, 12), (48, 4, 6)]))
    events = result.melodies[0]
    assert events[0] == cls(67) and events[2] == cls(72) and events[4] == cls(48)
    # 48 ends at step 6 and is the last note: its final NOTE_OFF is stripped, as Magenta does.
    assert len(events) == 16 and np.all(events[5:] == NO_EVENT)
    assert np.all(events[[1, 3, 5]] == NO_EVENT)


def test_rests_melody_starts_on_bar_line_of_first_note():
    # First note in bar 2 at step 20: the melody starts at step 16; a 2-bar rest stays (gap_bars=inf).
    result = extract_melodies(make_sequence([(60, 20, 22), (62, 70, 72)]))
    events = result.melodies[0]
    assert len(events) == 64  # steps 16..79 padded to 4 bars
    assert events[4] == cls(60) and events[6] == NOTE_OFF and events[54] == cls(62)
    assert np.all(events[7:54] == NO_EVENT)


def test_pitch_range_drops_notes_outside_21_to_108():
    result = extract_melodies(make_sequence([(20, 0, 2), (109, 2, 4), (21, 4, 6), (108, 6, 8)]))
    events = result.melodies[0]
    assert events[0] == NO_EVENT and events[2] == NO_EVENT  # 20 and 109 dropped
    assert events[4] == cls(21) == 2 and events[6] == cls(108) == 89
    only_out_of_range = extract_melodies(make_sequence([(10, 0, 4), (120, 4, 8)]))
    assert only_out_of_range.skip_reason == "no_notes_in_pitch_or_program_range"


def test_bar_length_only_16_step_bars_under_magenta_rules():
    notes = [(60 + i % 5, 4 * i, 4 * i + 3) for i in range(24)]
    for numerator, denominator, kept in [(4, 4, True), (2, 2, True), (3, 4, False), (6, 8, False)]:
        result = extract_melodies(make_sequence(notes, time_signatures=[(0.0, numerator, denominator)]))
        assert bool(result.melodies) == kept, (numerator, denominator)
        if not kept:
            assert result.skip_reason == "no_16_step_bars"
    # The stream reading keeps the 3/4 tune, in 16-step bars.
    three_four = make_sequence(notes, time_signatures=[(0.0, 3, 4)])
    stream = extract_melodies(three_four, MelodyRules(stream_bars=True))
    assert len(stream.melodies) == 1 and len(stream.melodies[0]) == 96


def test_time_signature_change_splits_and_skips_the_odd_meter_piece():
    # 4 bars of 4/4 (steps 0..63), then 3/4 from step 64 on.
    notes = [(60 + i % 7, 4 * i, 4 * i + 2) for i in range(28)]
    result = extract_melodies(make_sequence(notes, time_signatures=[(0.0, 4, 4), (64 * STEP, 3, 4)]))
    assert len(result.melodies) == 1 and len(result.melodies[0]) == 64
    assert result.skips["piece_not_16_step_bars"] == 1


def test_tempo_change_splits_the_song():
    notes = [(60, 4 * i, 4 * i + 2) for i in range(16)]
    result = extract_melodies(make_sequence(notes, tempos=[(0.0, 120.0), (32 * STEP, 90.0)]))
    assert len(result.melodies) == 2


def test_drum_tracks_are_skipped_and_each_instrument_gives_a_melody():
    notes = [(60, 0, 4, 0), (36, 0, 1, 9, True), (38, 4, 5, 9, True), (72, 2, 6, 1)]
    result = extract_melodies(make_sequence(notes))
    assert len(result.melodies) == 2  # instruments 0 and 1; the drums give none
    assert result.melodies[0][0] == cls(60) and result.melodies[1][2] == cls(72)
    drums = extract_melodies(make_sequence([(36, 0, 1, 9, True), (38, 4, 5, 9, True)]))
    assert drums.skip_reason == "drums_only" and not drums.melodies


def test_program_filter_and_length_cap():
    notes = [(60, 0, 4, 0, False, 40), (64, 0, 4, 1, False, 0)]
    lakh = extract_melodies(make_sequence(notes), MelodyRules(valid_programs=melody.MEL_PROGRAMS))
    assert len(lakh.melodies) == 1 and lakh.melodies[0][0] == cls(64)
    capped = extract_melodies(make_sequence(notes), MelodyRules(max_song_seconds=0.1))
    assert capped.skip_reason == "too_long"
    assert extract_melodies(make_sequence([])).skip_reason == "no_notes"


def test_chunks_and_windows():
    events = np.zeros(5 * 32 + 16, np.int32)  # 5 full chunks and a trailing single bar
    events[[0, 32, 96, 128]] = cls(60)  # chunk 2 (steps 64..95) is all rest
    chunks = melody_chunks(events)
    assert chunks.shape == (5, 32)
    np.testing.assert_array_equal(all_rest(chunks), [False, False, True, False, False])
    starts = [start for start, _ in song_windows(chunks, window_chunks=2, stride=1)]
    assert starts == [0, 3]  # windows 1-2 and 2-3 hold the all-rest chunk
    assert count_windows(5, 2, 1) == 4 and count_windows(5, 2, 2) == 2 and count_windows(1, 2, 1) == 0
    with pytest.raises(ValueError):
        list(song_windows(chunks, window_chunks=0, stride=1))


def silent_note_offs_removed(events):
    """A NOTE_OFF while nothing sounds (a note ended in the previous chunk) decodes to silence."""
    events, sounding = events.copy(), False
    for step, event in enumerate(events):
        if event == NOTE_OFF and not sounding:
            events[step] = NO_EVENT
        sounding = event > NOTE_OFF or (sounding and event == NO_EVENT)
    return events


def test_real_chunks_round_trip_through_midi_files(tmp_path):
    real = sorted((pathlib.Path(__file__).parent / "data" / "midi").rglob("*.mid"))
    chunks = [chunk for path in real
              for events in extract_melodies(midi_io.midi_file_to_note_sequence(str(path))).melodies
              for chunk in melody_chunks(events)]
    assert len(chunks) > 50
    for i, chunk in enumerate(chunks):
        path = tmp_path / f"{i}.mid"
        melody.note_sequence_to_midi_file(melody.events_to_note_sequence(chunk), path)
        read_back = midi_io.midi_file_to_note_sequence(str(path))
        np.testing.assert_array_equal(melody.note_sequence_to_events(read_back, 32),
                                      silent_note_offs_removed(chunk))


def test_decode_then_extract_gives_the_chunk_back():
    events = np.zeros(32, np.int32)
    events[[0, 3, 8, 12, 20]] = [cls(67), cls(69), NOTE_OFF, cls(72), cls(71)]
    result = extract_melodies(melody.events_to_note_sequence(events))
    np.testing.assert_array_equal(result.melodies[0], events)


def test_decoding_rejects_bad_classes():
    with pytest.raises(ValueError, match="classes"):
        melody.events_to_note_sequence(np.array([0, 90]))
