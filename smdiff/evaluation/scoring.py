"""The scoring path of every evaluation job. Sets of melodies (`score`): Table 1's OA scores (both
readings) and the latent FD/MMD, with every headline metric named once here for the tables, the logs and
the reverse-process curves. Piano rolls (`score_rolls`): the piano-roll evaluation's metrics per system;
harmonizations of a given melody also `score_harmony` (the harmony metrics of `harmony`, with intervals).

A set is events int [n, steps] (decoded samples or real windows) and, optionally, its scaled latents
[n, k, d]; the ground truth of the OA metric is the training set's `melody_sets.SetOverlaps`, the latent
reference the test split's latents.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smdiff.data.keys import Key, estimate_key
from smdiff.data.pianoroll import roll_to_notes
from smdiff.evaluation import harmony, latent_metrics, melody_sets
from smdiff.evaluation import pianoroll_metrics as metrics

# Headline metric key (logs, JSON) -> its label (figures, reverse_process.json).
METRICS = {
    "pitch_C": "pitch C", "pitch_Var": "pitch Var", "duration_C": "duration C", "duration_Var": "duration Var",
    "latent_fd": "latent FD", "latent_mmd": "latent MMD",
}
LATENT_METRICS = ("latent_fd", "latent_mmd")
HARMONY_PREFIX = "harmony_"  # the harmony metrics' keys in a piano-roll report: harmony_<harmony.METRICS>
# Piano-roll scores where lower is better (every other score: higher).
LOWER_IS_BETTER = ("pitch_class_distance", "out_of_key_rate") + tuple(
    HARMONY_PREFIX + metric for metric in harmony.METRICS if metric not in harmony.HIGHER_IS_BETTER)


def score(events: np.ndarray, ground_truth: melody_sets.SetOverlaps, latents: np.ndarray | None = None,
          reference_latents: np.ndarray | None = None) -> dict:
    """Everything Table 1 and its supplement say of one set (`melody_sets.report`), plus latent FD and
    MMD against `reference_latents` when both latent sets are given."""
    report = melody_sets.report(melody_sets.set_overlaps(events), ground_truth)
    if latents is not None and reference_latents is not None:
        report["latent_fd"] = latent_metrics.frechet_distance(reference_latents, latents)
        report["latent_mmd"] = latent_metrics.mmd_polynomial(reference_latents, latents)
    return report


def headline(report: dict) -> dict[str, float]:
    """The headline metrics of a `score` report by key (`METRICS`): the table's (C, Var) per feature
    under the pooled reading, and the latent distances when measured."""
    values = {}
    for feature, (consistency, variance) in report["table"].items():
        values[f"{feature}_C"] = consistency
        values[f"{feature}_Var"] = variance
    values.update({key: report[key] for key in LATENT_METRICS if key in report})
    return values


def _region_only(rolls: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Rolls with every cell outside `region` (broadcastable bool) switched off."""
    return np.where(region, rolls, 0).astype(np.float32)


def score_rolls(outputs: dict[str, np.ndarray], system_overlaps: dict[str, tuple[list, list]], reference: np.ndarray,
               given: np.ndarray, keys: Sequence[Key] | None, train_overlaps, lowest_pitch: int
               ) -> dict[str, dict[str, float]]:
    """Metrics of each system's rolls [n, T, P] for one piano-roll task (smdiff pianoroll-eval); `given`
    [n, T, P] bool marks clamped cells.

    system_overlaps: each system's `metrics.roll_overlaps`. Note P/R/F1, pitch-class distance and the
    out-of-key rate look at the generated cells only (so the given part cannot inflate them); OA looks at
    whole rolls. keys None: each roll's own estimated key.
    """
    generated_region = ~given
    results = {}
    for system, rolls in outputs.items():
        generated = _region_only(rolls, generated_region)
        scores = metrics.oa_scores(system_overlaps[system], train_overlaps)
        if given.any():
            scores.update(metrics.note_precision_recall_f1(generated, _region_only(reference, generated_region),
                                                           lowest_pitch))
            scores["pitch_class_distance"] = metrics.pitch_class_distance(
                generated, _region_only(reference, generated_region), lowest_pitch)
        roll_keys = keys if keys is not None else [
            estimate_key(notes) if len(notes) else Key(0, "major")
            for notes in (roll_to_notes(roll, lowest_pitch) for roll in rolls)]
        scores["out_of_key_rate"] = metrics.out_of_key_rate(generated, roll_keys, lowest_pitch)
        scores["density"] = float(rolls.mean())
        results[system] = scores
    return results


def score_harmony(outputs: dict[str, np.ndarray], voice_separated: dict[str, np.ndarray], melody: np.ndarray,
                  steps_per_beat: int, lowest_pitch: int, num_resamples: int = 1000, seed: int = 0,
                  baseline: str = "bernoulli", keys: Sequence[Key] | None = None
                  ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict]]]:
    """The harmony metrics of each system's harmonizations of the melodies melody [n, T, P], with their 90%
    interval over `num_resamples` bootstrap resamples of the segments, paired across systems (shared draws).

    outputs: single-channel rolls [n, T, P] per system, separated into voices by pitch order under the melody
    (`harmony.harmonization_voices`); voice_separated: voice-separated rolls [n, V, T, P] per system, whose
    voices are exact; it must hold 'test_data' (the reference). A system in both is read from its voices.
    Crossing is measured on voice-separated systems only (pitch order cannot cross). keys: each segment's key
    for out_of_key (default: the key estimated from the segment's melody). Returns
    ({system: {harmony_<metric>: value}}, {system: {harmony_<metric>: {low, high, beats_<baseline>}}}).
    """
    if "test_data" not in voice_separated:
        raise ValueError("voice_separated must hold the reference, 'test_data'")
    voices = {system: [harmony.harmonization_voices(roll, line, lowest_pitch)[0] for roll, line in zip(rolls, melody,
                                                                                                        strict=True)]
              for system, rolls in outputs.items() if system not in voice_separated}
    voices |= {system: [harmony.voices_from_tracks(segment, lowest_pitch) for segment in tracks]
               for system, tracks in voice_separated.items()}
    counts = {}
    for system, system_voices in voices.items():
        counts[system] = harmony.score_segments(system_voices, voices["test_data"], steps_per_beat, keys)
        if system not in voice_separated:
            del counts[system]["crossing"]
    draws = metrics.bootstrap_draws(len(melody), num_resamples, seed)
    lower = [m for m in harmony.METRICS if m not in harmony.HIGHER_IS_BETTER]
    summary = metrics.bootstrap_summary(harmony.ratio_bootstrap(counts, draws), baseline, lower_is_better=lower)
    values = {system: {HARMONY_PREFIX + m: harmony.ratio(*pair) for m, pair in system_counts.items()}
              for system, system_counts in counts.items()}
    intervals = {system: {HARMONY_PREFIX + m: entry for m, entry in entries.items()}
                 for system, entries in summary.items()}
    return values, intervals


def harmony_rows(values: dict[str, dict[str, float]], intervals: dict[str, dict[str, dict]]) -> list[str]:
    """`score_harmony`'s output as markdown table lines: one row per system, 'value (low-high)' per harmony
    metric; n/a where there is nothing to score or the metric is not measured for the system."""
    rows = ["| system | " + " | ".join(harmony.METRICS) + " |", "|---|" + "---|" * len(harmony.METRICS)]
    for system, scores in values.items():
        cells = []
        for metric in harmony.METRICS:
            value = scores.get(HARMONY_PREFIX + metric, float("nan"))
            interval = intervals[system].get(HARMONY_PREFIX + metric)
            cells.append("n/a" if np.isnan(value) else f"{value:.3f} ({interval['low']:.3f}-{interval['high']:.3f})")
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return rows
