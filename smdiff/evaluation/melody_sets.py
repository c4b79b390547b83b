"""Table-1 metrics of a *set* of melodies: framewise OA against the training set, both readings.

A set is an int array of events [n, steps] (decoded samples or real windows, k 2-bar chunks each); the
training set's OAs are the ground truth (GT) of paper eq. 10. Both aggregation readings of REFERENCE.md
are computed; `TABLE_READING` ('pooled', the paper's wording) is the one the table shows. Every score
carries a bootstrap interval over resamples of the set's melodies (the piano-roll evaluation's draws).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from smdiff.evaluation import note_stats, overlap
from smdiff.evaluation.pianoroll_metrics import bootstrap_draws, central_interval, grouped_bootstrap_draws
from smdiff.evaluation.notes import events_to_notes

READINGS = ("pooled", "per_sequence")
TABLE_READING = "pooled"
CONFIDENCE = 0.9  # of the bootstrap intervals beside every score
FEATURES = ("pitch", "duration")


@dataclasses.dataclass
class SetOverlaps:
    """Adjacent-frame OAs of each melody of a set: feature -> list of 1-D arrays (one per melody)."""

    per_melody: dict[str, list[np.ndarray]]
    note_statistics: dict[str, float]
    # Adjacent-frame pairs of the whole set: 'pairs', and those with one ('one_empty') or two ('both_empty')
    # empty frames, the pairs whose OA the empty-frame rule of `overlap` decides.
    frame_pairs: dict[str, int]

    def statistics(self, reading: str) -> dict[str, tuple[float, float]]:
        """feature -> (mean OA, variance of OA): the absolute values of the paper's supplement Table 2."""
        return {feature: overlap.oa_statistics(self.per_melody[feature], reading) for feature in FEATURES}


def set_overlaps(events: np.ndarray) -> SetOverlaps:
    """OAs and note statistics of every melody in events int [n, steps]."""
    events = np.asarray(events)
    num_steps = events.shape[-1]
    per_melody = {feature: [] for feature in FEATURES}
    stats = []
    frame_pairs = {"pairs": 0, "one_empty": 0, "both_empty": 0}
    for melody_events in events.reshape(len(events), num_steps):
        notes = events_to_notes(melody_events)
        frames = overlap.frame_statistics(notes, num_steps=num_steps)
        pitch_oa, duration_oa = overlap.frame_pair_overlaps(frames)
        per_melody["pitch"].append(pitch_oa)
        per_melody["duration"].append(duration_oa)
        stats.append(note_stats.melody_statistics(notes, num_steps))
        for key, count in overlap.empty_frame_pairs(frames["num_notes"]).items():
            frame_pairs[key] += count
    return SetOverlaps(per_melody, note_stats.summarize(stats), frame_pairs)


def relative_to(samples: SetOverlaps, ground_truth: SetOverlaps, reading: str = TABLE_READING) -> dict:
    """feature -> (Consistency, Variance) of `samples` relative to `ground_truth` (paper eq. 10)."""
    return {
        feature: overlap.consistency_variance(samples.per_melody[feature], ground_truth.per_melody[feature], reading)
        for feature in FEATURES
    }


def intervals(samples: SetOverlaps, ground_truth: SetOverlaps, reading: str, draws: np.ndarray,
              confidence: float = CONFIDENCE) -> dict:
    """feature -> bootstrap intervals (low, high) of the set's 'mean_oa' and 'variance_oa' and of its
    Consistency 'C' and Variance 'Var' under `reading`.

    draws: int [R, n] (`bootstrap_draws`), the resampled sets of the n melodies; the ground truth stays
    the fixed reference. C and Var are eq. 10 of the raw statistics, which folds at the ground truth, so
    their intervals are the images of the raw statistics' percentile intervals (and contain the point
    estimate whenever those do; percentiles of the folded values would not).
    """
    result = {}
    for feature in FEATURES:
        resampled = overlap.resampled_oa_statistics(samples.per_melody[feature], draws, reading)
        reference = overlap.oa_statistics(ground_truth.per_melody[feature], reading)
        raw = [central_interval(values, confidence) for values in resampled]
        result[feature] = {"mean_oa": raw[0], "variance_oa": raw[1],
                           **{name: overlap.similarity_interval(interval, gt)
                              for name, interval, gt in zip(("C", "Var"), raw, reference)}}
    return result


def report(samples: SetOverlaps, ground_truth: SetOverlaps, num_resamples: int = 1000, seed: int = 0,
           confidence: float = CONFIDENCE, groups: np.ndarray | None = None) -> dict:
    """Everything Table 1 and its supplement need for one setting, under both readings, with each score's
    `confidence` bootstrap interval over `num_resamples` resamples of the set's melodies ('interval_<reading>').

    groups [n]: for real windows, each one's tune (song id); the resamples then draw whole tunes, since the
    overlapping windows of one tune are not independent draws. None (generated sets): each melody alone."""
    count = len(samples.per_melody[FEATURES[0]])
    if groups is not None and len(groups) != count:
        raise ValueError(f"groups must label each of the {count} melodies, got {len(groups)}")
    draws = (bootstrap_draws(count, num_resamples, seed) if groups is None
             else grouped_bootstrap_draws(groups, num_resamples, seed))
    return {
        "table": relative_to(samples, ground_truth, TABLE_READING),
        **{f"relative_{reading}": relative_to(samples, ground_truth, reading) for reading in READINGS},
        **{f"absolute_{reading}": samples.statistics(reading) for reading in READINGS},
        **{f"interval_{reading}": intervals(samples, ground_truth, reading, draws, confidence)
           for reading in READINGS},
        "bootstrap": {"num_resamples": num_resamples, "confidence": confidence, "seed": seed,
                      "resampled": "melodies" if groups is None else f"{len(np.unique(groups))} groups"},
        "note_statistics": samples.note_statistics,
        "frame_pairs": samples.frame_pairs,
    }


def source_similarity(events: np.ndarray, sources: np.ndarray, num_resamples: int = 1000, seed: int = 0,
                      confidence: float = CONFIDENCE) -> dict[str, dict]:
    """How close each melody stays to its source (a variation to the window it varies), frame by frame.

    events, sources: int [n, steps], melody i made from source i. Per pair, the OA of frame f of the melody
    with frame f of its source, averaged over the frames (1: the same pitch and duration distributions in
    every frame). Returns feature -> {'mean': the mean over pairs, 'interval': its bootstrap (low, high)}.
    """
    events, sources = np.asarray(events), np.asarray(sources)
    if events.shape != sources.shape:
        raise ValueError(f"each melody needs its source: shapes {events.shape} and {sources.shape}")
    num_steps = events.shape[-1]
    per_pair = {feature: [] for feature in FEATURES}  # feature -> [n] mean frame OA of each pair
    for melody_events, source_events in zip(events, sources):
        frames = [overlap.frame_statistics(events_to_notes(e), num_steps=num_steps) for e in (melody_events, source_events)]
        if not len(frames[0]["num_notes"]):
            raise ValueError(f"melodies of {num_steps} steps are shorter than one frame")
        for feature, oas in zip(FEATURES, overlap.aligned_frame_overlaps(*frames)):
            per_pair[feature].append(oas.mean())
    draws = bootstrap_draws(len(events), num_resamples, seed)
    return {feature: {"mean": float(np.mean(values)),
                      "interval": central_interval(draws @ np.asarray(values) / len(values), confidence)}
            for feature, values in per_pair.items()}


def reference_windows(train_events: np.ndarray, max_reference: int | None, rng: np.random.Generator) -> np.ndarray:
    """The GT set of the OA metric: the training windows, or `max_reference` of them drawn with `rng`."""
    if max_reference is None or len(train_events) <= max_reference:
        return train_events
    return train_events[rng.choice(len(train_events), max_reference, replace=False)]
