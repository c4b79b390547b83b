"""Monophonic melodies by Magenta's rules, their 90-class event encoding, and decoding back to MIDI.

Event classes (MusicVAE's `cat-mel_2bar_big` one-hot melody encoding):
  0 = NO_EVENT (hold the sounding note, or stay silent), 1 = NOTE_OFF, 2..89 = note-on of MIDI pitch
  21..108 (class = pitch - 19). One event per 16th-note step (4 steps per quarter).

Extraction follows MusicVAE's `OneHotMelodyConverter` with note_seq's `extract_melodies` as the
released diffusion code configured it (`gap_bars=inf`, polyphony resolved to the highest note, end
padded to a whole bar):
  1. drop notes outside pitches 21..108 and, if `valid_programs` is set, of other programs;
  2. split the song at time-signature and tempo changes; quantize each piece at 4 steps per quarter;
     Magenta's rules keep only pieces whose bars are 16 steps long (4/4, 2/2);
  3. per non-drum instrument, one melody: notes in (start, -pitch) order; a note starting where a
     kept note starts is dropped (the kept one is higher); a later note cuts the sounding one; the
     melody starts on the bar line at or before its first note and is padded to whole bars;
  4. songs longer than `max_song_seconds` (an hour) are skipped.

`MelodyRules(stream_bars=True)` is the embedded corpus's variant (see `tfds_builders/melody_common.py`
for the choice): time signatures are ignored and a tune is read as one continuous stream of 16-step
bars, so tunes in 3/4, 6/8, 2/4 etc. are kept; tempo changes still split.
"""
from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
from etils import epath
from note_seq import midi_io, sequences_lib
from note_seq.protobuf import music_pb2

NUM_CLASSES = 90
NO_EVENT = 0
NOTE_OFF = 1
MIN_PITCH = 21
MAX_PITCH = 108
PITCH_TO_CLASS = 19  # class = pitch - 19
STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16
MEL_PROGRAMS = tuple(range(32))  # piano, chromatic percussion, organ, guitar (MusicVAE's melody set)
DEFAULT_MAX_SONG_SECONDS = 3600.0
OUTPUT_VELOCITY = 80


@dataclasses.dataclass(frozen=True)
class MelodyRules:
    """How melodies are read from a song.

    Attributes:
      stream_bars: False = Magenta's rules (only 16-step bars); True = ignore time signatures and read
        the song as a continuous stream of 16-step bars.
      valid_programs: MIDI programs a melody may come from (None = every non-drum program).
      max_song_seconds: songs longer than this are skipped.
    """

    stream_bars: bool = False
    valid_programs: tuple[int, ...] | None = None
    max_song_seconds: float = DEFAULT_MAX_SONG_SECONDS


@dataclasses.dataclass
class SongMelodies:
    """The melodies of one song (event arrays, int32 [steps], steps a multiple of 16) and why parts
    of it were skipped (`skips`: reason -> count; `skip_reason` is set when nothing came out)."""

    melodies: list[np.ndarray]
    skips: collections.Counter
    skip_reason: str = ""


def _events_from_notes(notes: list, first_step: int, num_steps: int | None = None) -> np.ndarray:
    """Encodes quantized notes of one instrument as events from `first_step` on (Magenta's rules).

    Returns int32 [steps]: with `num_steps`, exactly that many (notes past it are cut); otherwise
    up to the last note's end, a final NOTE_OFF stripped, padded to a whole bar.
    """
    events: list[int] = []
    last_onset = -1
    for note in sorted(notes, key=lambda n: (n.quantized_start_step, -n.pitch)):
        start = note.quantized_start_step - first_step
        end = note.quantized_end_step - first_step
        if start < 0 or (num_steps is not None and start >= num_steps):
            continue
        if start == last_onset:  # polyphony: the note already placed here is the highest
            continue
        # The new note cuts whatever sounds at `start`: shrink or grow the events to end at `end`.
        events = events[: end + 1] + [NO_EVENT] * (end + 1 - len(events))
        events[start] = note.pitch - PITCH_TO_CLASS
        events[start + 1 : end] = [NO_EVENT] * (end - start - 1)
        events[end] = NOTE_OFF
        last_onset = start
    if num_steps is not None:
        events = events[:num_steps] + [NO_EVENT] * (num_steps - len(events))
        return np.asarray(events, np.int32)
    if events and events[-1] == NOTE_OFF:
        del events[-1]
    events += [NO_EVENT] * (-len(events) % STEPS_PER_BAR)
    return np.asarray(events, np.int32)


def _keep_note(note, rules: MelodyRules) -> bool:
    if note.is_drum or not note.velocity or not MIN_PITCH <= note.pitch <= MAX_PITCH:
        return False
    return rules.valid_programs is None or note.program in rules.valid_programs


def _song_skip_reason(ns: music_pb2.NoteSequence, rules: MelodyRules) -> str:
    if not ns.notes:
        return "no_notes"
    if all(note.is_drum for note in ns.notes):
        return "drums_only"
    if ns.total_time > rules.max_song_seconds:
        return "too_long"
    if not any(_keep_note(note, rules) for note in ns.notes):
        return "no_notes_in_pitch_or_program_range"
    return ""


def extract_melodies(ns: music_pb2.NoteSequence, rules: MelodyRules = MelodyRules()) -> SongMelodies:
    """Extracts one melody per non-drum instrument and time-change piece of a song.

    Args:
      ns: an unquantized NoteSequence (times in seconds).
      rules: strict Magenta rules or the continuous 16-step-bar stream.
    Returns:
      SongMelodies; each melody int32 [steps], steps a multiple of 16, starting on a bar line.
    """
    skips: collections.Counter = collections.Counter()
    reason = _song_skip_reason(ns, rules)
    if reason:
        return SongMelodies([], skips, reason)
    song = music_pb2.NoteSequence()
    song.CopyFrom(ns)
    kept = [note for note in song.notes if _keep_note(note, rules)]
    del song.notes[:]
    song.notes.extend(kept)
    if rules.stream_bars:
        del song.time_signatures[:]  # note_seq then reads 4/4: 16-step bars throughout

    melodies = []
    for piece in sequences_lib.split_note_sequence_on_time_changes(song):
        try:
            quantized = sequences_lib.quantize_note_sequence(piece, STEPS_PER_QUARTER)
            steps_per_bar = sequences_lib.steps_per_bar_in_quantized_sequence(quantized)
        except (sequences_lib.BadTimeSignatureError, sequences_lib.NegativeTimeError,
                sequences_lib.MultipleTimeSignatureError, sequences_lib.MultipleTempoError) as error:
            skips[f"piece_{type(error).__name__}"] += 1
            continue
        if steps_per_bar != STEPS_PER_BAR:
            skips["piece_not_16_step_bars"] += 1
            continue
        by_instrument = collections.defaultdict(list)
        for note in quantized.notes:
            by_instrument[note.instrument].append(note)
        for instrument in sorted(by_instrument):
            notes = by_instrument[instrument]
            first_onset = min(note.quantized_start_step for note in notes)
            melody = _events_from_notes(notes, first_onset - first_onset % STEPS_PER_BAR)
            if len(melody):
                melodies.append(melody)
    if not melodies:
        reason = "no_16_step_bars" if skips["piece_not_16_step_bars"] else "no_melody"
        return SongMelodies([], skips, reason)
    return SongMelodies(melodies, skips)


def note_sequence_to_events(ns: music_pb2.NoteSequence, num_steps: int) -> np.ndarray:
    """Encodes a monophonic NoteSequence (e.g. a decoded chunk) as exactly `num_steps` events from
    time 0, quantized at 4 steps per quarter under its first tempo; the inverse of
    `events_to_note_sequence` for events that hold no NOTE_OFF during silence. int32 [num_steps]."""
    quantized = sequences_lib.quantize_note_sequence(ns, STEPS_PER_QUARTER)
    notes = [note for note in quantized.notes if MIN_PITCH <= note.pitch <= MAX_PITCH]
    return _events_from_notes(notes, 0, num_steps)


def events_to_note_sequence(events, qpm: float = 120.0) -> music_pb2.NoteSequence:
    """Decodes event classes (int [steps]) to a one-instrument NoteSequence in 4/4 at `qpm`."""
    events = np.asarray(events)
    if events.ndim != 1 or np.any((events < 0) | (events >= NUM_CLASSES)):
        raise ValueError(f"events must be a 1-d array of classes 0..{NUM_CLASSES - 1}, got {events!r}")
    seconds_per_step = 60.0 / (qpm * STEPS_PER_QUARTER)
    ns = music_pb2.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(time=0.0, qpm=qpm)
    ns.time_signatures.add(time=0.0, numerator=4, denominator=4)
    onset, pitch = None, None  # the sounding note
    for step, event in enumerate([*events.tolist(), NOTE_OFF]):  # a final NOTE_OFF ends the last note
        if event == NO_EVENT:
            continue
        if onset is not None:
            ns.notes.add(pitch=pitch, velocity=OUTPUT_VELOCITY, start_time=onset * seconds_per_step,
                         end_time=step * seconds_per_step)
            onset = None
        if event != NOTE_OFF:
            onset, pitch = step, event + PITCH_TO_CLASS
    ns.total_time = max((note.end_time for note in ns.notes), default=0.0)
    return ns


def note_sequence_to_midi_file(ns: music_pb2.NoteSequence, path: str | os.PathLike) -> None:
    """Writes a NoteSequence to a standard MIDI file, a local path or a URL (folders are created)."""
    path = epath.Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        midi_io.note_sequence_to_pretty_midi(ns).write(file)
