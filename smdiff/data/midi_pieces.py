"""MIDI files (a folder, or the Lakh MIDI tarball) -> one-track `Piece`s of all non-drum notes merged.

Files are found and read by `smdiff.data.midi_files`, as for the melody datasets.
"""
from __future__ import annotations

import collections

from smdiff.data import midi_files, pools
from smdiff.data.pianoroll import Piece, note_sequence_to_notes

PIANO_LOW, PIANO_HIGH = 21, 108
MAX_STEPS = 4 * 60 * 60  # one hour at 4 steps per quarter and 60 qpm: longer files are skipped


def midi_bytes_to_piece(name: str, data: bytes, steps_per_quarter: int) -> Piece | str:
    """One MIDI file's bytes -> Piece (notes outside the piano range dropped), or why it is skipped."""
    try:
        ns = midi_files.read_midi(data, name)
    except midi_files.MidiReadError as error:
        return error.reason
    if not any(not note.is_drum for note in ns.notes):
        return "no non-drum notes"
    try:
        notes = note_sequence_to_notes(ns, steps_per_quarter)
    except Exception as error:  # e.g. note_seq's MultipleTempoChangesError
        return f"cannot quantize ({type(error).__name__})"
    notes = notes[(notes[:, 2] >= PIANO_LOW) & (notes[:, 2] <= PIANO_HIGH)]
    if len(notes) == 0:
        return "no notes in the piano range"
    num_steps = int(notes[:, 1].max())
    if num_steps > MAX_STEPS * steps_per_quarter // 4:
        return "longer than an hour"
    return Piece(name=name, tracks=(notes,), num_steps=num_steps)


def _parse_star(args: tuple[str, bytes, int]) -> Piece | str:
    return midi_bytes_to_piece(*args)


def load_midi_pieces(
    source: str, steps_per_quarter: int = 4, processes: int = 2
) -> tuple[list[Piece], collections.Counter]:
    """All usable pieces under `source` (folder or tarball) and a Counter of skip reasons."""
    jobs = ((name, data, steps_per_quarter) for name, data in midi_files.iter_midi(source))
    results = list(pools.ordered_map(_parse_star, jobs, processes, batch_size=16))
    pieces = [result for result in results if isinstance(result, Piece)]
    skips = collections.Counter(result for result in results if isinstance(result, str))
    if not pieces:
        raise RuntimeError(f"no usable MIDI file in {source!r} (skips: {dict(skips)})")
    return pieces, skips
