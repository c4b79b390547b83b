"""Harmony metrics for melody harmonization, per segment, with paired bootstrap intervals.

Every metric reads a *voice array* int [V, T]: the MIDI pitch of voice v at step t, -1 where it rests.
Voice 0 is the given melody (the soprano); voices 1.. are the generated ones (chorales: alto, tenor, bass).
Voice-separated rolls [V, T, P] (the `tracks` the chorale builder keeps apart) give exact voices
(`voices_from_tracks`); a single-channel roll [T, P] is separated by pitch order at every step
(`voices_by_pitch_order`: the i-th highest sounding pitch is voice i), which cannot see a crossing.
A note is a run of one pitch in one voice (as in a binary roll, a repeated note reads as one held note).

Each metric is a ratio, pooled over segments: a segment contributes (numerator, denominator), the score is
sum(numerators) / sum(denominators) and a bootstrap resample reweights segments (`ratio_bootstrap`):
- out_of_key: generated notes outside the key estimated from the melody alone / generated notes;
- consonance: consonant (melody, generated voice) intervals / intervals checked, at strong-beat steps (beats
  1 and 3 of a 4/4 bar counted from the segment's first step: a chorale in 3/4 or with an upbeat is read on
  the same grid) where the melody or that voice has an onset. Consonant: unison/octave, minor and
  major thirds and sixths, perfect fifth (interval classes 0, 3, 4, 7, 8, 9); the perfect fourth (5) is
  consonant against an inner voice but dissonant against the bass (the lowest sounding voice); seconds,
  the tritone and sevenths are dissonant;
- parallel_fifths / parallel_octaves: per bar, over every voice pair: both voices move in the same direction
  between consecutive steps and the interval is a perfect fifth (octaves: unison or octave) before and after
  (compound intervals included; motion across a rest is not checked);
- crossing: steps where a voice sounds above the voice above it / steps where both sound (adjacent pairs);
- out_of_range: generated notes outside their voice's textbook range (`VOICE_RANGES`) / generated notes;
- pitch_class_distance: total-variation distance between the duration-weighted pitch-class histograms of the
  generated voices and the reference's (segments where either is empty are left out: denominator 0);
- note_f1: onset-and-pitch matches of generated notes with the reference's, 2 TP / (generated + reference).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from smdiff.data.keys import Key, estimate_key

CONSONANT_CLASSES = frozenset({0, 3, 4, 7, 8, 9})
PERFECT_FOURTH = 5
# Textbook SATB ranges (MIDI): soprano C4-G5, alto G3-D5, tenor C3-G4, bass E2-C4.
VOICE_RANGES = ((60, 79), (55, 74), (48, 67), (40, 60))
METRICS = ("out_of_key", "consonance", "parallel_fifths", "parallel_octaves", "crossing", "out_of_range",
           "pitch_class_distance", "note_f1")
HIGHER_IS_BETTER = ("consonance", "note_f1")  # every other metric: lower is better


def voices_from_tracks(tracks: np.ndarray, lowest_pitch: int) -> np.ndarray:
    """Voice-separated rolls [V, T, P] -> voice array int [V, T] (each voice's highest sounding pitch)."""
    tracks = np.asarray(tracks).astype(bool)
    num_pitches = tracks.shape[-1]
    highest = num_pitches - 1 - np.argmax(tracks[..., ::-1], axis=-1)  # [V, T]
    return np.where(tracks.any(axis=-1), highest + lowest_pitch, -1).astype(np.int32)


def voices_by_pitch_order(roll: np.ndarray, lowest_pitch: int, num_voices: int = 4) -> tuple[np.ndarray, int]:
    """A single-channel roll [T, P] -> (voice array int [num_voices, T], cells dropped).

    At every step the i-th highest sounding pitch becomes voice i; pitches below the num_voices-th are
    dropped and counted. Voices separated this way never cross, so `crossing` is 0 by construction.
    """
    roll = np.asarray(roll).astype(bool)
    voices = np.full((num_voices, roll.shape[0]), -1, np.int32)
    dropped = 0
    for step, row in enumerate(roll):
        pitches = np.flatnonzero(row)[::-1] + lowest_pitch  # highest first
        voices[:len(pitches[:num_voices]), step] = pitches[:num_voices]
        dropped += max(len(pitches) - num_voices, 0)
    return voices, dropped


def harmonization_voices(roll: np.ndarray, melody: np.ndarray, lowest_pitch: int, num_voices: int = 4
                         ) -> tuple[np.ndarray, int]:
    """A single-channel harmonization roll [T, P] of a given melody roll [T, P] -> (voice array int
    [num_voices, T], cells dropped): voice 0 is the melody's top voice, the others the roll's cells below it
    (all cells where it rests) separated by pitch order (`voices_by_pitch_order`)."""
    melody_voice = voices_from_tracks(np.asarray(melody)[None], lowest_pitch)[0]  # [T]
    columns = np.arange(np.shape(roll)[-1]) + lowest_pitch
    below = (melody_voice[:, None] < 0) | (columns[None, :] < melody_voice[:, None])  # [T, P]
    lower, dropped = voices_by_pitch_order(np.where(below, roll, 0), lowest_pitch, num_voices - 1)
    return np.concatenate([melody_voice[None], lower]), dropped


def note_onsets(voice: np.ndarray) -> np.ndarray:
    """bool [T]: a note of voice int [T] starts at the step."""
    previous = np.concatenate([[-1], voice[:-1]])
    return (voice >= 0) & (voice != previous)


def melody_key(voices: np.ndarray) -> Key | None:
    """The key estimated from voice 0 (the given melody) alone; None when the melody is silent."""
    melody = voices[0]
    if not (melody >= 0).any():
        return None
    sounding = np.flatnonzero(melody >= 0)
    notes = np.stack([sounding, sounding + 1, melody[sounding]], axis=1)  # one step per row: durations add up
    return estimate_key(notes)


def _pitch_class_histogram(voices: np.ndarray) -> np.ndarray:
    """Duration-weighted pitch-class histogram float [12] of a voice array [V, T] (zeros if silent)."""
    counts = np.bincount(voices[voices >= 0] % 12, minlength=12).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def _note_set(voices: np.ndarray) -> set[tuple[int, int]]:
    return {(int(step), int(voice[step])) for voice in voices for step in np.flatnonzero(note_onsets(voice))}


def _parallels(upper: np.ndarray, lower: np.ndarray) -> tuple[int, int]:
    """(parallel fifths, parallel octaves) between two voices int [T]."""
    both = (upper[:-1] >= 0) & (lower[:-1] >= 0) & (upper[1:] >= 0) & (lower[1:] >= 0)
    up_motion, low_motion = np.sign(np.diff(upper)), np.sign(np.diff(lower))
    similar = both & (up_motion != 0) & (up_motion == low_motion)
    before, after = np.abs(upper[:-1] - lower[:-1]) % 12, np.abs(upper[1:] - lower[1:]) % 12
    fifths = similar & (before == 7) & (after == 7)
    octaves = similar & (before == 0) & (after == 0)
    return int(fifths.sum()), int(octaves.sum())


def segment_counts(voices: np.ndarray, reference: np.ndarray, steps_per_beat: int, beats_per_bar: int = 4,
                   key: Key | None = None) -> dict[str, tuple[float, float]]:
    """{metric: (numerator, denominator)} of one segment: voices and reference int [V, T], voice 0 the melody.
    key: out_of_key's key (default: estimated from the segment's melody, `melody_key`)."""
    voices, reference = np.asarray(voices), np.asarray(reference)
    generated = voices[1:]
    num_voices, num_steps = voices.shape
    counts = {}

    key = melody_key(voices) if key is None else key
    onsets = np.stack([note_onsets(voice) for voice in voices])  # [V, T]
    generated_pitches = generated[onsets[1:]]
    outside = 0 if key is None else int((~key.in_key()[generated_pitches % 12]).sum())
    counts["out_of_key"] = (outside, len(generated_pitches) if key is not None else 0)

    strong = np.arange(num_steps) % (2 * steps_per_beat) == 0
    consonant = checked = 0
    for step in np.flatnonzero(strong & (voices[0] >= 0)):
        sounding = np.flatnonzero(generated[:, step] >= 0) + 1
        if not len(sounding):
            continue
        bass = sounding[np.argmin(voices[sounding, step])]
        for voice in sounding:
            if not (onsets[0, step] or onsets[voice, step]):
                continue
            interval = abs(int(voices[0, step]) - int(voices[voice, step])) % 12
            checked += 1
            consonant += interval in CONSONANT_CLASSES or (interval == PERFECT_FOURTH and voice != bass)
    counts["consonance"] = (consonant, checked)

    fifths = octaves = 0
    for upper in range(num_voices):
        for lower in range(upper + 1, num_voices):
            pair_fifths, pair_octaves = _parallels(voices[upper], voices[lower])
            fifths, octaves = fifths + pair_fifths, octaves + pair_octaves
    num_bars = num_steps / (steps_per_beat * beats_per_bar)
    counts["parallel_fifths"] = (fifths, num_bars)
    counts["parallel_octaves"] = (octaves, num_bars)

    both = (voices[:-1] >= 0) & (voices[1:] >= 0)  # [V - 1, T]: adjacent pairs
    counts["crossing"] = (int((both & (voices[1:] > voices[:-1])).sum()), int(both.sum()))

    out_of_range = 0
    for voice, (low, high) in zip(range(1, num_voices), VOICE_RANGES[1:]):
        pitches = voices[voice][onsets[voice]]
        out_of_range += int(((pitches < low) | (pitches > high)).sum())
    counts["out_of_range"] = (out_of_range, len(generated_pitches))

    histograms = _pitch_class_histogram(generated), _pitch_class_histogram(reference[1:])
    scored = histograms[0].any() and histograms[1].any()
    counts["pitch_class_distance"] = (0.5 * np.abs(histograms[0] - histograms[1]).sum() if scored else 0.0,
                                      float(scored))

    generated_notes, reference_notes = _note_set(generated), _note_set(reference[1:])
    counts["note_f1"] = (2 * len(generated_notes & reference_notes), len(generated_notes) + len(reference_notes))
    return counts


def score_segments(voices: Sequence[np.ndarray], references: Sequence[np.ndarray], steps_per_beat: int,
                   keys: Sequence[Key] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{metric: (numerators [n], denominators [n])} over n segments (voice arrays [V, T] each); keys: each
    segment's key for out_of_key (default: each one's melody key)."""
    keys = [None] * len(voices) if keys is None else keys
    per_segment = [segment_counts(v, r, steps_per_beat, key=k)
                   for v, r, k in zip(voices, references, keys, strict=True)]
    return {metric: tuple(np.array([counts[metric][i] for counts in per_segment], float) for i in (0, 1))
            for metric in METRICS}


def ratio(numerators: np.ndarray, denominators: np.ndarray, draws: np.ndarray | None = None) -> float | np.ndarray:
    """sum(num) / sum(den), or with draws int [R, n] (`pianoroll_metrics.bootstrap_draws`) one per resample [R];
    NaN where the denominator is 0 (nothing to score)."""
    if draws is None:
        total = denominators.sum()
        return float(numerators.sum() / total) if total else float("nan")
    totals = draws @ denominators
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, (draws @ numerators) / totals, np.nan)


def ratio_bootstrap(system_counts: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], draws: np.ndarray
                    ) -> dict[str, dict[str, np.ndarray]]:
    """{system: {metric: [R]}} on shared draws int [R, n], so comparisons between systems are paired; the
    input of `pianoroll_metrics.bootstrap_summary`."""
    return {system: {metric: ratio(*pair, draws) for metric, pair in counts.items()}
            for system, counts in system_counts.items()}
