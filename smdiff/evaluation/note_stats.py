"""Note statistics of decoded melodies, reported beside the overlapping-area metric.

The OA metric can be gamed by unmusical sequences (Plasser et al. 2023), so the evaluation also reports
simple statistics that expose degenerate samples: silence, a single repeated bar, absurd ranges.
Notes are int arrays [n, 3] of (start_step, end_step, pitch) on a 16th-note grid.
"""
from __future__ import annotations

import numpy as np

STEPS_PER_BAR = 16


def _step_grid(notes: np.ndarray, num_steps: int) -> np.ndarray:
    """[num_steps, 2] of (sounding pitch or -1, 1 where a note starts): one row per step."""
    grid = np.full((num_steps, 2), (-1, 0), dtype=np.int64)
    for start, end, pitch in notes:
        grid[start:min(end, num_steps), 0] = pitch
        if start < num_steps:
            grid[start, 1] = 1
    return grid


def melody_statistics(notes: np.ndarray, num_steps: int, segment_bars: int = 2) -> dict[str, float]:
    """Statistics of one melody of `num_steps` steps.

    Returns:
      pitch_range: highest minus lowest pitch (0 without notes);
      notes_per_bar: note onsets per 16-step bar;
      rest_ratio: fraction of steps where no note sounds;
      mean_duration: mean note length in steps (0 without notes);
      repeated_segment_ratio: fraction of `segment_bars`-bar segments that repeat an earlier segment of the
        same melody exactly (pitches and onsets), the mark of a sampler stuck in a loop.
    """
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    grid = _step_grid(notes, num_steps)
    segment = segment_bars * STEPS_PER_BAR
    segments = [grid[i:i + segment].tobytes() for i in range(0, num_steps - segment + 1, segment)]
    repeats = len(segments) - len(set(segments))
    has_notes = len(notes) > 0
    return {
        "pitch_range": float(notes[:, 2].max() - notes[:, 2].min()) if has_notes else 0.0,
        "notes_per_bar": len(notes) / (num_steps / STEPS_PER_BAR),
        "rest_ratio": float(np.mean(grid[:, 0] < 0)),
        "mean_duration": float(np.mean(notes[:, 1] - notes[:, 0])) if has_notes else 0.0,
        "repeated_segment_ratio": repeats / len(segments) if segments else 0.0,
    }


def summarize(per_melody: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each statistic over a set of melodies."""
    if not per_melody:
        raise ValueError("no melodies to summarize")
    return {key: float(np.mean([stats[key] for stats in per_melody])) for key in per_melody[0]}
