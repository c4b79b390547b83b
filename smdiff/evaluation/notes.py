"""Decoded melody events -> note arrays, the input of the overlapping-area metric and the note statistics.

The decoding rule (a note-on lasts until the next note-on, NOTE_OFF or the melody's end) is the data
package's `events_to_note_sequence`; this only reads its notes back onto the 16th-note step grid.
"""
import numpy as np

from smdiff.data import melody

_QPM = 120.0
_STEPS_PER_SECOND = _QPM * melody.STEPS_PER_QUARTER / 60.0


def events_to_notes(events: np.ndarray) -> np.ndarray:
    """Notes int64 [n, 3] = (start_step, end_step, pitch) of one melody's events int [num_steps].

    k decoded 2-bar chunks are concatenated into k * 32 steps first; a chunk boundary does not end a
    held note, as in the MIDI file the chunks make together.
    """
    ns = melody.events_to_note_sequence(np.asarray(events).reshape(-1), qpm=_QPM)
    notes = [(round(n.start_time * _STEPS_PER_SECOND), round(n.end_time * _STEPS_PER_SECOND), n.pitch)
             for n in ns.notes]
    return np.array(notes, dtype=np.int64).reshape(-1, 3)
