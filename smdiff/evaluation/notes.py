"""Decoded melody events -> notes, the input of the overlapping-area metric and the note statistics.

Events use the 90-class melody encoding (smdiff.data): 0 = NO_EVENT (hold the sounding note, or keep
resting), 1 = NOTE_OFF, 2..89 = note-on of MIDI pitch class + 19 (21..108), one event per 16th-note step.
"""
import numpy as np

NO_EVENT = 0
NOTE_OFF = 1
FIRST_PITCH_CLASS = 2
PITCH_OFFSET = 19  # MIDI pitch = class + PITCH_OFFSET
NUM_CLASSES = 90


def events_to_notes(events: np.ndarray) -> np.ndarray:
    """Notes int64 [n, 3] = (start_step, end_step, pitch) of one melody's events int [num_steps].

    A note starts at a note-on and lasts until the next note-on, NOTE_OFF, or the end of the melody.
    (k decoded 2-bar chunks are concatenated into k * 32 steps first; a chunk boundary does not end a
    note, as in the MIDI the chunks make together.)
    """
    events = np.asarray(events).reshape(-1)
    if events.size and (events.min() < 0 or events.max() >= NUM_CLASSES):
        raise ValueError(f"event classes must lie in [0, {NUM_CLASSES}), got [{events.min()}, {events.max()}]")
    onsets = np.flatnonzero(events >= FIRST_PITCH_CLASS)
    # Every note-on or NOTE_OFF ends the note before it; the melody's end closes the last one.
    boundaries = np.append(np.flatnonzero(events >= NOTE_OFF), events.size)
    ends = boundaries[np.searchsorted(boundaries, onsets, side="right")]
    pitches = events[onsets].astype(np.int64) + PITCH_OFFSET
    return np.stack([onsets, ends, pitches], axis=1).astype(np.int64).reshape(-1, 3)
