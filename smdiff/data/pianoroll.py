"""Binary piano rolls: notes <-> rolls, NoteSequence reading, segmenting and MIDI export.

A *note array* is int32 [n, 3] of (start_step, end_step, pitch) with end exclusive, the format the
overlapping-area metric reads. A *roll* is a binary array [time, num_pitches] whose column j is MIDI
pitch `lowest_pitch + j`; a *voice-channel roll* [time, num_pitches, V] holds one roll per voice (chorales:
S, A, T, B), the channel-last layout of the voice-separated `tracks` [V, time, num_pitches]. A binary roll
cannot tell a held note from a repeated one: converting a roll back to notes reads every run of ones in a column
as one note.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from note_seq import midi_io
from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

DEFAULT_QPM = 120.0


@dataclasses.dataclass(frozen=True)
class PitchRange:
    """The MIDI pitches a roll's columns stand for: lowest_pitch .. lowest_pitch + num_pitches - 1."""

    lowest_pitch: int
    num_pitches: int

    @property
    def highest_pitch(self) -> int:
        return self.lowest_pitch + self.num_pitches - 1

    @classmethod
    def covering(cls, low: int, high: int, multiple_of: int = 8) -> "PitchRange":
        """The smallest range holding [low, high] whose size is a multiple of `multiple_of`.

        The U-Net halves the pitch axis once per level, so its size must divide by 2**(levels - 1).
        Extra columns go alternately above and below, keeping the data centred.
        """
        if high < low:
            raise ValueError(f"empty pitch range [{low}, {high}]")
        size = -(-(high - low + 1) // multiple_of) * multiple_of
        extra = size - (high - low + 1)
        lowest = max(0, low - extra // 2)
        return cls(lowest_pitch=lowest, num_pitches=size)


def notes_to_roll(notes: np.ndarray, num_steps: int, pitch_range: PitchRange) -> np.ndarray:
    """Note array [n, 3] -> roll uint8 [num_steps, num_pitches]; notes are cut to the roll's extent.

    Raises ValueError for a pitch outside `pitch_range` (callers decide whether to drop or transpose).
    """
    roll = np.zeros((num_steps, pitch_range.num_pitches), np.uint8)
    for start, end, pitch in np.asarray(notes, np.int64).reshape(-1, 3):
        column = pitch - pitch_range.lowest_pitch
        if not 0 <= column < pitch_range.num_pitches:
            raise ValueError(f"pitch {pitch} outside {pitch_range}")
        roll[max(start, 0):min(end, num_steps), column] = 1
    return roll


def tracks_to_channels(tracks: np.ndarray) -> np.ndarray:
    """Voice-separated rolls [..., V, time, pitch] -> voice-channel rolls [..., time, pitch, V]."""
    return np.moveaxis(np.asarray(tracks), -3, -1)


def channels_to_tracks(rolls: np.ndarray) -> np.ndarray:
    """Voice-channel rolls [..., time, pitch, V] -> voice-separated rolls [..., V, time, pitch]."""
    return np.moveaxis(np.asarray(rolls), -1, -3)


def roll_to_notes(roll: np.ndarray, lowest_pitch: int) -> np.ndarray:
    """Roll [time, num_pitches] -> note array int32 [n, 3], one note per run of ones, sorted by start."""
    active = np.asarray(roll).astype(bool)  # [T, P]
    padded = np.pad(active, ((1, 1), (0, 0))).astype(np.int8)
    change = np.diff(padded, axis=0)  # [T + 1, P]: +1 at an onset, -1 one past an offset
    # nonzero on the transpose walks column by column, so the k-th onset pairs with the k-th offset.
    columns, starts = np.nonzero(change.T == 1)
    _, ends = np.nonzero(change.T == -1)
    notes = np.stack([starts, ends, columns + lowest_pitch], axis=1).astype(np.int32)
    order = np.lexsort((notes[:, 2], notes[:, 0]))
    return notes[order]


def note_sequence_to_notes(ns: music_pb2.NoteSequence, steps_per_quarter: int) -> np.ndarray:
    """All non-drum notes of a NoteSequence as one note array [n, 3], quantized to the step grid.

    Times are converted to quarters with the sequence's first tempo (MIDI files with tempo changes are
    quantized as note_seq does, which raises for several tempos: callers count those as skips).
    """
    quantized = sequences_lib.quantize_note_sequence(ns, steps_per_quarter)
    rows = [
        (note.quantized_start_step, max(note.quantized_end_step, note.quantized_start_step + 1), note.pitch)
        for note in quantized.notes
        if not note.is_drum
    ]
    return np.asarray(rows, np.int32).reshape(-1, 3)


def notes_to_note_sequence(
    notes: np.ndarray,
    steps_per_quarter: int,
    qpm: float = DEFAULT_QPM,
    velocity: int = 80,
    program: int = 0,
    instruments: np.ndarray | None = None,
) -> music_pb2.NoteSequence:
    """Note array [n, 3] -> NoteSequence in seconds at a constant tempo (piano by default); `instruments` int [n]
    puts each note on an instrument (a MIDI track each; default all on instrument 0)."""
    seconds_per_step = 60.0 / qpm / steps_per_quarter
    notes = np.asarray(notes).reshape(-1, 3)
    instruments = np.zeros(len(notes), np.int64) if instruments is None else np.asarray(instruments)
    ns = music_pb2.NoteSequence()
    ns.tempos.add(qpm=qpm)
    ns.ticks_per_quarter = 220
    for (start, end, pitch), instrument in zip(notes, instruments, strict=True):
        ns.notes.add(
            pitch=int(pitch),
            velocity=velocity,
            program=program,
            instrument=int(instrument),
            start_time=float(start) * seconds_per_step,
            end_time=float(end) * seconds_per_step,
        )
    ns.total_time = max((note.end_time for note in ns.notes), default=0.0)
    return ns


def roll_to_midi_file(
    roll: np.ndarray, pitch_range: PitchRange, steps_per_quarter: int, path: str, qpm: float = DEFAULT_QPM
) -> None:
    """Writes a roll [time, num_pitches] as a one-track MIDI file."""
    midi_io.note_sequence_to_midi_file(roll_to_note_sequence(roll, pitch_range, steps_per_quarter, qpm), path)


def roll_to_note_sequence(roll: np.ndarray, pitch_range: PitchRange, steps_per_quarter: int,
                          qpm: float = DEFAULT_QPM) -> music_pb2.NoteSequence:
    """A roll [time, num_pitches] as a one-track NoteSequence."""
    return notes_to_note_sequence(roll_to_notes(roll, pitch_range.lowest_pitch), steps_per_quarter, qpm)


def tracks_to_note_sequence(tracks: np.ndarray, pitch_range: PitchRange, steps_per_quarter: int,
                            names: tuple[str, ...] = (), qpm: float = DEFAULT_QPM) -> music_pb2.NoteSequence:
    """Voice-separated rolls [V, time, num_pitches] as a NoteSequence with voice v on instrument v (its own MIDI
    track), named names[v] where given."""
    notes = [roll_to_notes(track, pitch_range.lowest_pitch) for track in tracks]
    voice_of_note = np.repeat(np.arange(len(notes)), [len(voice) for voice in notes])
    ns = notes_to_note_sequence(np.concatenate(notes), steps_per_quarter, qpm, instruments=voice_of_note)
    for voice, name in enumerate(names):
        ns.instrument_infos.add(instrument=voice, name=name)
    return ns


def midi_file_to_roll(path: str, pitch_range: PitchRange, steps_per_quarter: int) -> np.ndarray:
    """Reads a MIDI file back into a roll [time, num_pitches] (all non-drum tracks merged)."""
    notes = note_sequence_to_notes(midi_io.midi_file_to_note_sequence(path), steps_per_quarter)
    num_steps = int(notes[:, 1].max()) if len(notes) else 0
    return notes_to_roll(notes, num_steps, pitch_range)


def segment_starts(num_steps: int, segment_steps: int, stride_steps: int) -> list[int]:
    """Start steps of the full-length segments [start, start + segment_steps) of a piece."""
    if segment_steps <= 0 or stride_steps <= 0:
        raise ValueError("segment and stride must be positive")
    return list(range(0, num_steps - segment_steps + 1, stride_steps))


@dataclasses.dataclass(frozen=True)
class Piece:
    """One piece as note arrays on the step grid: `tracks[i]` int32 [n_i, 3] (chorales: S, A, T, B)."""

    name: str
    tracks: tuple[np.ndarray, ...]
    num_steps: int

    def merged_notes(self) -> np.ndarray:
        """All tracks' notes in one note array [n, 3]."""
        return np.concatenate(self.tracks, axis=0) if self.tracks else np.zeros((0, 3), np.int32)

    def pitch_bounds(self) -> tuple[int, int]:
        pitches = self.merged_notes()[:, 2]
        return int(pitches.min()), int(pitches.max())
