"""Note statistics on hand-built melodies."""
import numpy as np
import pytest

from smdiff.evaluation import note_stats


def test_statistics_of_a_hand_built_melody():
    # 4 bars (64 steps): bars 1-2 hold C4 quarter notes on beats 1 and 3; bars 3-4 repeat them exactly.
    two_bars = [(0, 4, 60), (8, 12, 64), (16, 20, 67), (24, 28, 72)]
    notes = np.array(two_bars + [(s + 32, e + 32, p) for s, e, p in two_bars])
    stats = note_stats.melody_statistics(notes, num_steps=64)
    assert stats["pitch_range"] == 12
    assert stats["notes_per_bar"] == 2
    assert stats["rest_ratio"] == pytest.approx(0.5)
    assert stats["mean_duration"] == 4
    assert stats["repeated_segment_ratio"] == pytest.approx(0.5)  # segment 2 of 2 repeats segment 1


def test_silence_and_summary():
    silent = note_stats.melody_statistics(np.zeros((0, 3)), num_steps=32)
    assert silent == {"pitch_range": 0.0, "notes_per_bar": 0.0, "rest_ratio": 1.0, "mean_duration": 0.0,
                      "repeated_segment_ratio": 0.0}
    held = note_stats.melody_statistics(np.array([[0, 32, 50]]), num_steps=32)
    summary = note_stats.summarize([silent, held])
    assert summary["rest_ratio"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        note_stats.summarize([])
