"""Table-1 metrics of a *set* of melodies: framewise OA against the training set, both readings.

A set is an int array of events [n, steps] (decoded samples or real windows, k 2-bar chunks each); the
training set's OAs are the ground truth (GT) of paper eq. 10. Both aggregation readings of REFERENCE.md
are computed; `TABLE_READING` ('pooled', the paper's wording) is the one the table shows.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from smdiff.evaluation import note_stats, overlap
from smdiff.evaluation.notes import events_to_notes

READINGS = ("pooled", "per_sequence")
TABLE_READING = "pooled"
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


def report(samples: SetOverlaps, ground_truth: SetOverlaps) -> dict:
    """Everything Table 1 and its supplement need for one setting, under both readings."""
    return {
        "table": relative_to(samples, ground_truth, TABLE_READING),
        **{f"relative_{reading}": relative_to(samples, ground_truth, reading) for reading in READINGS},
        **{f"absolute_{reading}": samples.statistics(reading) for reading in READINGS},
        "note_statistics": samples.note_statistics,
        "frame_pairs": samples.frame_pairs,
    }


def reference_windows(train_events: np.ndarray, max_reference: int | None, rng: np.random.Generator) -> np.ndarray:
    """The GT set of the OA metric: the training windows, or `max_reference` of them drawn with `rng`."""
    if max_reference is None or len(train_events) <= max_reference:
        return train_events
    return train_events[rng.choice(len(train_events), max_reference, replace=False)]
