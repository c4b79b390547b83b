"""Calibration of the harmony metrics on the held-out chorales: what Bach, a valid but different harmony and the
training-free baselines score when harmonizing the test split's sopranos.

  .venv/bin/python -m benchmarks.bench_harmony_calibration [--num_resamples=1000] [--no_append]

Segments are built from music21's chorales exactly as the `pianorolls/bach_chorales` builder (1.1.0, split by
melody) writes its test split (`smdiff.data.pianoroll_segments`, 4 steps per quarter, 16-quarter segments),
without TFDS. Systems, all with the given soprano as voice 0, scored as `pianoroll-eval` scores harmonization
(`smdiff.evaluation.scoring.score_harmony`):
- test_data: Bach, the chorale's own alto, tenor and bass (the reference; voices exact);
- transposed_other_bach: the lower voices of another test segment (half the split away, another piece in the same
  mode), transposed from its chorale's key to this one's (`pianoroll_baselines.transposed_other_harmony`);
- rule: diatonic block triads (`pianoroll_baselines.rule_harmonization`; voices exact);
- melody_only: no lower voices;
- bernoulli: Bernoulli(r) noise below the melody at the train split's density r, voices by pitch order (so its
  crossing is not measured).
Every metric with its 90% paired-bootstrap interval over segments; also how often the key estimated from the
soprano alone agrees with the whole chorale's key.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import sys

import numpy as np

from benchmarks import report
from smdiff.data import chorales
from smdiff.data.keys import MODES, Key, estimate_key
from smdiff.data.pianoroll import roll_to_notes
from smdiff.data.pianoroll_segments import (SegmentConfig, choose_pitch_range, piece_segments, piece_splits,
                                            roll_statistics)
from smdiff.evaluation import harmony, scoring
from smdiff.evaluation import pianoroll_metrics as metrics
from smdiff.generators import pianoroll_baselines as baselines


def split_segments(pieces, split: str, config: SegmentConfig, pitch_range) -> list[dict]:
    """The split's segments as the builder writes them (chorales split by melody, builder version 1.1.0)."""
    splits, skips = piece_splits(pieces, config, by_melody=True), collections.Counter()
    return [example for piece in pieces if splits[piece.name] == split
            for _, example in piece_segments(piece, split, pitch_range, config, skips)]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)

    config = SegmentConfig()
    spb = config.steps_per_quarter
    pieces, _ = chorales.load_chorales(config.steps_per_quarter)
    pitch_range = choose_pitch_range(pieces, config)
    lowest = pitch_range.lowest_pitch
    test = split_segments(pieces, "test", config, pitch_range)
    untransposed = dataclasses.replace(config, transpositions=(0,))
    density = roll_statistics(e["roll"] for e in split_segments(pieces, "train", untransposed, pitch_range))["density"]

    tracks = np.stack([example["tracks"] for example in test])  # [n, 4, T, P]
    names = [example["piece"] for example in test]
    keys = [Key(int(e["key_tonic"]), MODES[int(e["key_mode"])]) for e in test]  # each whole chorale's key
    soprano = tracks[:, 0]
    noise = metrics.bernoulli_rolls(np.random.default_rng(args.seed), soprano.shape, density)
    voice_separated = {"test_data": tracks, **baselines.harmonization_baselines(tracks, keys, names, spb, lowest)}
    outputs = {"melody_only": soprano, "bernoulli": np.maximum(soprano, noise)}
    values, intervals = scoring.score_harmony(outputs, voice_separated, soprano, spb, lowest, args.num_resamples,
                                              args.seed)
    rows = scoring.harmony_rows(values, intervals)
    # The same out_of_key against the key of the chorale's whole soprano line instead of the segment's 4 bars.
    whole_soprano_keys = {piece.name: estimate_key(piece.tracks[0]) for piece in pieces if piece.name in set(names)}
    soprano_keys = [whole_soprano_keys[name] for name in names]
    whole_values, whole_intervals = scoring.score_harmony(outputs, voice_separated, soprano, spb, lowest,
                                                          args.num_resamples, args.seed, keys=soprano_keys)
    out_of_key = scoring.HARMONY_PREFIX + "out_of_key"
    whole_soprano = ", ".join(
        f"{system} {whole_values[system][out_of_key]:.3f} ({whole_intervals[system][out_of_key]['low']:.3f}-"
        f"{whole_intervals[system][out_of_key]['high']:.3f})"
        for system in whole_values if not np.isnan(whole_values[system][out_of_key]))

    bach = [harmony.voices_from_tracks(t, lowest) for t in tracks]
    melody_keys = [harmony.melody_key(voices) for voices in bach]
    same = sum(m == k for m, k in zip(melody_keys, keys))
    segment_keys = [estimate_key(roll_to_notes(e["roll"], lowest)) for e in test]  # all four voices of the segment
    same_segment = sum(m == k for m, k in zip(melody_keys, segment_keys))
    segment_same = sum(s == k for s, k in zip(segment_keys, keys))
    bach_out_of_key = metrics.out_of_key_rate(tracks[:, 1:].max(axis=1), keys, lowest)  # against the chorale's key
    notes = (f"{len(test)} test segments of {len(set(names))} chorales (pitch range {lowest}.."
             f"{pitch_range.highest_pitch}); Bernoulli density r = {density:.4f} (untransposed train segments). "
             f"Value (90% paired-bootstrap interval, {args.num_resamples} resamples of the segments). Ratios are "
             f"pooled over segments; n/a: nothing to score (no generated notes). parallel_* are per bar over all voice "
             f"pairs, melody included. The key estimated from the soprano alone equals the whole chorale's key on "
             f"{same}/{len(test)} segments and the key of the segment's four voices on {same_segment} (which itself "
             f"equals the chorale's on {segment_same}); Bach's lower voices (merged) are out of the whole chorale's "
             f"key at {bach_out_of_key:.3f} of their notes. The key of the chorale's whole soprano line equals the "
             f"chorale's on {sum(s == k for s, k in zip(soprano_keys, keys))}/{len(test)} segments; out_of_key "
             f"against it (not the segment's melody key): {whole_soprano}.")
    report.publish("Harmony metrics: calibration on the held-out chorales",
                   "python -m benchmarks.bench_harmony_calibration " + " ".join(argv), rows, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
