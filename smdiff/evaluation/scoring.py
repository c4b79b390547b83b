"""The one scoring path of sets of melodies: Table 1's OA scores (both readings) and the latent FD/MMD,
with every headline metric named once here for the tables, the logs and the reverse-process curves.

A set is events int [n, steps] (decoded samples or real windows) and, optionally, its scaled latents
[n, k, d]; the ground truth of the OA metric is the training set's `melody_sets.SetOverlaps`, the latent
reference the test split's latents.
"""
from __future__ import annotations

import numpy as np

from smdiff.evaluation import latent_metrics, melody_sets

# Headline metric key (logs, JSON) -> its label (figures, reverse_process.json).
METRICS = {
    "pitch_C": "pitch C", "pitch_Var": "pitch Var", "duration_C": "duration C", "duration_Var": "duration Var",
    "latent_fd": "latent FD", "latent_mmd": "latent MMD",
}
LATENT_METRICS = ("latent_fd", "latent_mmd")


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
