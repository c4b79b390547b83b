"""Training-free harmonizations of a given melody, the calibration rows of the harmony metrics.

- `rule_harmonization`: block chords of the diatonic triads of the melody's estimated key;
- `transposed_other_harmony`: another chorale's lower voices moved to this segment's key, the score of a valid
  but different harmony.
Both return voice-separated rolls [4, T, P] (soprano = the given melody, alto, tenor, bass); merge with
`.max(axis=0)` for a single-channel roll. (The noise baseline is `pianoroll_metrics.bernoulli_rolls`.)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smdiff.data.keys import Key
from smdiff.evaluation.harmony import melody_key, voices_from_tracks

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_HARMONIC_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)  # raised 7th: a major V and a leading tone
# Scale degrees (0 = I) in order of preference: the primary triads I, IV, V first.
_DEGREE_PREFERENCE = (0, 3, 4, 5, 1, 2, 6)
BASS_LOWEST, BASS_HIGHEST = 40, 60  # E2-C4
RELATIVE_MINOR_SHIFT = 9  # semitones from a major tonic up to its relative minor's (C major -> A minor)


def diatonic_triads(key: Key) -> list[tuple[int, int, int]]:
    """The key's triads as (root, third, fifth) pitch classes, in order of preference (I, IV, V, vi, ii, iii,
    vii; minor keys from the harmonic minor scale)."""
    scale = _MAJOR_SCALE if key.mode == "major" else _HARMONIC_MINOR_SCALE
    return [tuple((key.tonic + scale[(degree + step) % 7]) % 12 for step in (0, 2, 4))
            for degree in _DEGREE_PREFERENCE]


def _voicing(melody_pitch: int, triad: tuple[int, int, int]) -> tuple[int, int, int]:
    """(alto, tenor, bass) MIDI pitches: the two chord tones just below the melody (close position), and the
    root at the highest octave below the tenor within the bass range (lower if the tenor is below it)."""
    below = [p for p in range(melody_pitch - 1, melody_pitch - 13, -1) if p % 12 in triad]
    alto, tenor = below[0], below[1]
    bass = tenor - 1
    while bass % 12 != triad[0] or bass > BASS_HIGHEST:
        bass -= 1
    return alto, tenor, bass


def rule_harmonization(melody: np.ndarray, steps_per_beat: int, lowest_pitch: int) -> np.ndarray:
    """Melody roll [T, P] -> voice-separated rolls uint8 [4, T, P] (soprano = the melody's top voice).

    Every two beats (the strong beats of 4/4) the chord is the most preferred diatonic triad of the key
    estimated from the melody that contains the melody's pitch at the beat (the first melody note of the span
    when it rests there); it holds until the next strong beat, voiced in close position under every melody
    note (`_voicing`), so no voice crosses the melody. The lower voices rest where the melody rests; a span whose
    note is outside every diatonic triad keeps the previous triad (silent if none yet).
    Pitches outside the roll's columns are dropped.
    """
    melody = np.asarray(melody)
    num_steps, num_pitches = melody.shape
    voices = np.full((4, num_steps), -1, np.int32)
    voices[0] = voices_from_tracks(melody[None], lowest_pitch)[0]
    key = melody_key(voices)
    if key is None:
        return voices_to_tracks(voices, num_pitches, lowest_pitch)
    triads, triad = diatonic_triads(key), None
    span = 2 * steps_per_beat
    for start in range(0, num_steps, span):
        melody_span = voices[0, start:start + span]
        sounding = melody_span[melody_span >= 0]
        fitting = [candidate for candidate in triads if len(sounding) and sounding[0] % 12 in candidate]
        triad = fitting[0] if fitting else triad
        if triad is None:
            continue
        for step in np.flatnonzero(melody_span >= 0) + start:  # revoiced under every melody note: no crossing
            voices[1:, step] = _voicing(int(voices[0, step]), triad)
    return voices_to_tracks(voices, num_pitches, lowest_pitch)


def voices_to_tracks(voices: np.ndarray, num_pitches: int, lowest_pitch: int) -> np.ndarray:
    """Voice array int [V, T] (-1 rest) -> voice-separated rolls uint8 [V, T, P]; out-of-range pitches dropped."""
    columns = voices - lowest_pitch
    valid = (voices >= 0) & (columns >= 0) & (columns < num_pitches)
    tracks = np.zeros((*voices.shape, num_pitches), np.uint8)
    voice_index, steps = np.nonzero(valid)
    tracks[voice_index, steps, columns[valid]] = 1
    return tracks


def transposed_other_harmony(melody_tracks: np.ndarray, key: Key, other_tracks: np.ndarray, other_key: Key,
                             lowest_pitch: int) -> np.ndarray:
    """This segment's soprano over another segment's lower voices, transposed from `other_key` to `key`.

    melody_tracks, other_tracks: voice-separated rolls [V, T, P] (voice 0 the soprano); the lower voices move by
    the tonic difference taken in [-6, 5] semitones, from `other_key`'s relative key when the modes differ (its
    scale is then this key's natural scale). Returns uint8 [V, T, P]; notes moved outside the pitch range are
    dropped.
    """
    num_pitches = melody_tracks.shape[-1]
    voices = voices_from_tracks(melody_tracks, lowest_pitch)
    other = voices_from_tracks(other_tracks, lowest_pitch)
    other_tonic = other_key.tonic if other_key.mode == key.mode else other_key.tonic + RELATIVE_MINOR_SHIFT * (
        1 if key.mode == "minor" else -1)
    shift = (key.tonic - other_tonic + 6) % 12 - 6
    lower = np.where(other[1:] >= 0, other[1:] + shift, -1)
    return voices_to_tracks(np.concatenate([voices[:1], lower]), num_pitches, lowest_pitch)


def other_segment(index: int, pieces: Sequence[str], keys: Sequence[Key]) -> int:
    """The segment whose lower voices `transposed_other_harmony` lends to segment `index`: the first one from half
    the set onwards (cyclically) of another piece in the same mode, or of another piece in the other mode when
    no other piece is in this one."""
    n = len(pieces)
    others = [(index + offset) % n for offset in range(n // 2, n // 2 + n)]
    others = [other for other in others if pieces[other] != pieces[index]]
    if not others:
        raise ValueError(f"the {n} segments are all of one piece, {pieces[index]!r}: no other harmony to borrow")
    same_mode = [other for other in others if keys[other].mode == keys[index].mode]
    return (same_mode or others)[0]


def harmonization_baselines(tracks: np.ndarray, keys: Sequence[Key], pieces: Sequence[str], steps_per_beat: int,
                            lowest_pitch: int) -> dict[str, np.ndarray]:
    """The training-free harmonizations of the sopranos of voice-separated test segments tracks [n, V, T, P]
    (keys: each segment's chorale key; pieces: its piece name): {'rule', 'transposed_other_bach'} ->
    voice-separated rolls uint8 [n, V, T, P]."""
    tracks = np.asarray(tracks)
    return {
        "rule": np.stack([rule_harmonization(segment[0], steps_per_beat, lowest_pitch) for segment in tracks]),
        "transposed_other_bach": np.stack([
            transposed_other_harmony(tracks[i], keys[i], tracks[j], keys[j], lowest_pitch)
            for i, j in ((i, other_segment(i, pieces, keys)) for i in range(len(tracks)))]),
    }
