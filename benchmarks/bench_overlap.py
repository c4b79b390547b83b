"""The framewise overlapping-area metric on real melodies: calibration (the paper's "Test data" row) and speed.

  .venv/bin/python -m benchmarks.bench_overlap [--dataset=melody_windows/embedded] [--data_dir=data/tfds]
      [--max_windows=5000] [--no_append]

Reads the real song windows of a prepared `melody_windows` dataset (train and test splits, split by song),
computes every window's adjacent-frame OAs (4-bar frames, 2-bar hop) and reports, under both aggregation
readings: the absolute mean and variance of the OAs of each split (paper supplement Table 2; Plasser et al.
report 0.796 / 0.828 mean OA for pitch / duration on Lakh melodies under the per-sequence reading), and
Consistency / Variance of the test split and of as many random train windows relative to the whole train
split, with 90% bootstrap intervals over resampled tunes (a tune's windows overlap, so they are resampled
together; paper Table 1's "Test data" row: 1.00 / 0.96
pitch, 1.00 / 0.91 duration on Lakh). Also the metric's speed in windows per second.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from benchmarks import report
from smdiff.evaluation import melody_sets


def load_events(dataset: str, split: str, data_dir: str, max_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """(events int [n, k * 32], song ids [n]) of up to `max_windows` windows of a prepared melody_windows split."""
    from smdiff.training import input_pipeline

    source = input_pipeline.TfdsSource(dataset, split, data_dir).load_process_slice()
    windows = list(source.take(max_windows).as_numpy_iterator())
    if not windows:
        raise ValueError(f"{dataset} has no {split} windows in {data_dir}")
    events = np.stack([example["events"] for example in windows])
    return events.reshape(len(events), -1), np.array([example["song_id"] for example in windows])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="melody_windows/embedded")
    parser.add_argument("--data_dir", default="data/tfds")
    parser.add_argument("--max_windows", type=int, default=5000, help="per split, in file order")
    parser.add_argument("--no_append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)

    sets, seconds, tunes = {}, {}, {}
    for split in ("train", "test"):
        events, tunes[split] = load_events(args.dataset, split, args.data_dir, args.max_windows)
        start = time.perf_counter()
        sets[split] = melody_sets.set_overlaps(events)
        seconds[split] = (time.perf_counter() - start, len(events), events.shape[1] // 16)

    rows = ["| split | windows | bars | reading | pitch mean OA | pitch OA var | duration mean OA | duration OA var "
            "| windows/s |", "|---|---|---|---|---|---|---|---|---|"]
    for split, overlaps in sets.items():
        elapsed, count, bars = seconds[split]
        for reading in melody_sets.READINGS:
            stats = overlaps.statistics(reading)
            rows.append(f"| {split} | {count} | {bars} | {reading} | {stats['pitch'][0]:.3f} | {stats['pitch'][1]:.4f} "
                        f"| {stats['duration'][0]:.3f} | {stats['duration'][1]:.4f} | {count / elapsed:.0f} |")
    # Table 1's real rows against the train split (the GT): the test windows, and as many train windows drawn
    # at random; each score with its 90% bootstrap interval over resampled tunes.
    num_test = len(sets["test"].per_melody["pitch"])
    drawn = np.random.default_rng(0).choice(len(sets["train"].per_melody["pitch"]), num_test, replace=False)
    train_subset = melody_sets.SetOverlaps({feature: [oas[i] for i in drawn] for feature, oas in
                                            sets["train"].per_melody.items()}, {}, {})
    rows += ["", "| row (relative to all train windows) | windows | reading | pitch C | pitch Var | duration C "
             "| duration Var |", "|---|---|---|---|---|---|---|"]
    rows_and_tunes = ((f"Test ({args.dataset})", sets["test"], tunes["test"]),
                      ("Train (random subset)", train_subset, tunes["train"][drawn]))
    for name, overlaps, row_tunes in rows_and_tunes:
        result = melody_sets.report(overlaps, sets["train"], groups=row_tunes)
        for reading in melody_sets.READINGS:
            cells = [f"{value:.2f} ({low:.2f}-{high:.2f})" for feature in melody_sets.FEATURES
                     for value, (low, high) in zip(result[f"relative_{reading}"][feature],
                                                   (result[f"interval_{reading}"][feature][n] for n in ("C", "Var")))]
            rows.append(f"| {name} | {num_test} ({len(np.unique(row_tunes))} tunes) | {reading} | "
                        + " | ".join(cells) + " |")

    command = "python -m benchmarks.bench_overlap " + " ".join(argv)
    notes = ("Paper (Lakh, 64-bar windows): test relative to train C 1.00 / Var 0.96 (pitch), C 1.00 / Var 0.91 "
             "(duration). Plasser et al. (Lakh, per_sequence reading): mean OA 0.796 pitch, 0.828 duration. "
             "Intervals resample whole tunes (all of a tune's windows together), since a tune's windows "
             "overlap (stride one chunk) and are not independent draws.")
    report.publish("Framewise overlapping area on real melodies", command.strip(), rows, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
