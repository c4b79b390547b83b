"""Metrics of generated piano rolls against real ones, and the two baselines they must beat.

Rolls are binary [n, time, pitch] with column j = MIDI pitch `lowest_pitch + j`; a note is a run of ones
in a column (`smdiff.data.pianoroll.roll_to_notes`), so a note is identified by its (onset step, pitch).

- note precision / recall / F1: generated notes that match a reference note in onset and pitch
  (counts pooled over the set);
- pitch-class histogram distance: total-variation distance (half the L1) between the duration-weighted
  pitch-class histograms of a generated roll and its reference, averaged over pairs (1 when one is empty);
- out-of-key rate: the fraction of generated notes whose pitch class is outside the piece's key
  (`smdiff.data.keys.Key.in_key`: the major scale, or minor with raised 6th and 7th);
- overlapping-area Consistency and Variance of pitch and duration against the training rolls, with
  polyphonic notes, under both aggregation readings (`smdiff.evaluation.overlap`), with a paired bootstrap
  over segments for their uncertainty (`oa_bootstrap`, `bootstrap_summary`).
Baselines: independent Bernoulli noise at the data's density of ones, and the given melody alone.
"""
from __future__ import annotations

from typing import Collection, Sequence

import numpy as np

from smdiff.data.keys import Key, pitch_class_histogram
from smdiff.data.pianoroll import roll_to_notes
from smdiff.evaluation import overlap

READINGS = ("pooled", "per_sequence")


def _note_keys(roll: np.ndarray, lowest_pitch: int) -> set[tuple[int, int]]:
    notes = roll_to_notes(roll, lowest_pitch)
    return set(zip(notes[:, 0].tolist(), notes[:, 2].tolist()))


def note_precision_recall_f1(generated: np.ndarray, reference: np.ndarray, lowest_pitch: int) -> dict[str, float]:
    """Onset-and-pitch note matching of rolls [n, time, pitch] against references [n, time, pitch]."""
    true_positives = generated_count = reference_count = 0
    for generated_roll, reference_roll in zip(generated, reference, strict=True):
        generated_notes = _note_keys(generated_roll, lowest_pitch)
        reference_notes = _note_keys(reference_roll, lowest_pitch)
        true_positives += len(generated_notes & reference_notes)
        generated_count += len(generated_notes)
        reference_count += len(reference_notes)
    precision = true_positives / generated_count if generated_count else 0.0
    recall = true_positives / reference_count if reference_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"note_precision": precision, "note_recall": recall, "note_f1": f1}


def pitch_class_distance(generated: np.ndarray, reference: np.ndarray, lowest_pitch: int) -> float:
    """Mean total-variation distance between the pitch-class histograms of paired rolls [n, time, pitch]."""
    distances = []
    for generated_roll, reference_roll in zip(generated, reference, strict=True):
        histograms = [pitch_class_histogram(roll_to_notes(r, lowest_pitch)) for r in (generated_roll, reference_roll)]
        if not histograms[0].any() or not histograms[1].any():
            distances.append(1.0)
        else:
            distances.append(0.5 * float(np.abs(histograms[0] - histograms[1]).sum()))
    return float(np.mean(distances))


def out_of_key_rate(rolls: np.ndarray, keys: Sequence[Key], lowest_pitch: int) -> float:
    """Fraction of all notes of rolls [n, time, pitch] outside their piece's key (0 if there are no notes)."""
    outside = total = 0
    for roll, key in zip(rolls, keys, strict=True):
        pitches = roll_to_notes(roll, lowest_pitch)[:, 2]
        outside += int((~key.in_key()[pitches % 12]).sum())
        total += len(pitches)
    return outside / total if total else 0.0


def roll_overlaps(rolls: np.ndarray, lowest_pitch: int, steps_per_bar: int, frame_bars: int = 2,
                  hop_bars: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Adjacent-frame OAs (pitch, duration) of each roll [n, time, pitch], polyphonic notes included.

    The paper's 4-bar frames with a 2-bar hop suit 64-bar melodies; a 4-bar piano-roll segment gets
    2-bar frames with a 1-bar hop (3 frames, 2 adjacent pairs).
    """
    pitch_oas, duration_oas = [], []
    for roll in rolls:
        pitch_oa, duration_oa = overlap.sequence_overlaps(
            roll_to_notes(roll, lowest_pitch), steps_per_bar, frame_bars, hop_bars, num_steps=roll.shape[0])
        pitch_oas.append(pitch_oa)
        duration_oas.append(duration_oa)
    return pitch_oas, duration_oas


def oa_scores(sample_overlaps: tuple[list, list], train_overlaps: tuple[list, list],
              draws: np.ndarray | None = None) -> dict[str, float] | dict[str, np.ndarray]:
    """Consistency and Variance of pitch and duration, both readings, from `roll_overlaps` outputs; with
    `draws` (int [R, n]) each score is an array [R] over resampled sets of the n samples."""
    scores = {}
    for reading in READINGS:
        for feature, samples, train in zip(("pitch", "duration"), sample_overlaps, train_overlaps):
            consistency, variance = overlap.consistency_variance(samples, train, reading, draws)
            scores[f"{feature}_consistency/{reading}"] = consistency
            scores[f"{feature}_variance/{reading}"] = variance
    return scores


def bootstrap_draws(n: int, num_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """int [R, n]: how many times each of n segments is in bootstrap resample r (shared by all systems, so that
    comparisons between them are paired)."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(num_resamples)])


def grouped_bootstrap_draws(groups: np.ndarray, num_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """int [R, n]: `bootstrap_draws` over whole groups (e.g. the tunes overlapping windows come from), each
    item counted as often as its group is drawn. groups [n]: any labels; with one item per group and the
    labels ascending, the draws are `bootstrap_draws(n)`'s."""
    _, group_of_item = np.unique(np.asarray(groups), return_inverse=True)
    return bootstrap_draws(int(group_of_item.max()) + 1, num_resamples, seed)[:, group_of_item.ravel()]


def central_interval(values: np.ndarray, confidence: float = 0.9) -> tuple[float, float]:
    """(low, high): the central `confidence` percentile interval of resampled values [R] (NaNs ignored: a resample
    with nothing to score; NaN, NaN when every one is)."""
    tail = 100 * (1 - confidence) / 2
    scored = np.asarray(values)[~np.isnan(values)]
    if not len(scored):
        return float("nan"), float("nan")
    low, high = np.percentile(scored, [tail, 100 - tail])
    return float(low), float(high)


def oa_bootstrap(system_overlaps: dict[str, tuple[list, list]], train_overlaps: tuple[list, list],
                 num_resamples: int = 1000, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Each system's `oa_scores` on bootstrap resamples of the segments: {system: {score: [R]}}.

    Every system scores the same n segments (the model and the baselines fill in the same test segments),
    so one set of draws serves them all and a comparison between two systems is paired. The training
    statistics are the fixed reference, as in the scores themselves.
    """
    sizes = {len(overlaps[0]) for overlaps in system_overlaps.values()}
    if len(sizes) != 1:
        raise ValueError(f"the systems must score the same segments, got set sizes {sorted(sizes)}")
    draws = bootstrap_draws(sizes.pop(), num_resamples, seed)
    return {system: oa_scores(overlaps, train_overlaps, draws) for system, overlaps in system_overlaps.items()}


def bootstrap_summary(resampled: dict[str, dict[str, np.ndarray]], baseline: str = "bernoulli",
                      confidence: float = 0.9, lower_is_better: Collection[str] = ()
                      ) -> dict[str, dict[str, dict[str, float]]]:
    """{system: {score: {low, high[, beats_<baseline>]}}} from `oa_bootstrap`'s resamples.

    low/high: the central `confidence` interval; beats_<baseline>: the fraction of resamples in which the
    system scores better than the baseline on the same segments: higher (every OA score), or lower for the
    scores named in `lower_is_better`. A resample where either is NaN (nothing to score) is no win.
    """
    summary = {}
    for system, scores in resampled.items():
        summary[system] = {}
        for name, values in scores.items():
            low, high = central_interval(values, confidence)
            entry = {"low": low, "high": high}
            if baseline in resampled and system != baseline and name in resampled[baseline]:
                other = resampled[baseline][name]
                entry[f"beats_{baseline}"] = float(np.mean(values < other if name in lower_is_better else values > other))
            summary[system][name] = entry
    return summary


def bernoulli_rolls(rng: np.random.Generator, shape: tuple[int, ...], density: float) -> np.ndarray:
    """The noise baseline: every cell independently on with the data's density of ones."""
    return (rng.random(shape) < density).astype(np.float32)
