"""Set-level Table-1 metrics on hand-built melodies whose answers are known."""
import numpy as np
import pytest

from smdiff.data import melody
from smdiff.evaluation import melody_sets


def _events(pitches_and_lengths, num_steps=128):
    """A melody's events from (pitch, length-in-steps) pairs, padded with NO_EVENT."""
    events = np.zeros(num_steps, dtype=np.int32)
    step = 0
    for pitch, length in pitches_and_lengths:
        events[step] = pitch - melody.PITCH_TO_CLASS
        step += length
    return events


@pytest.fixture(scope="module")
def varied_set():
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    return np.stack([
        _events([(p, 4) for p in scale] * 4),
        _events([(p, 2) for p in scale[::-1]] * 8),
        _events([(60 + (i % 5), 2 + 2 * (i % 3)) for i in range(30)]),
    ])


def test_a_set_against_itself_scores_one(varied_set):
    overlaps = melody_sets.set_overlaps(varied_set)
    result = melody_sets.report(overlaps, overlaps)
    for reading in ("table", "relative_pooled", "relative_per_sequence"):
        assert result[reading]["pitch"] == pytest.approx((1.0, 1.0))
        assert result[reading]["duration"] == pytest.approx((1.0, 1.0))
    # 128 steps = 8 bars -> 3 frames -> 2 adjacent pairs per melody.
    assert all(len(oa) == 2 for oa in overlaps.per_melody["pitch"])


def test_a_repeated_single_note_is_far_from_varied_melodies(varied_set):
    monotone = np.stack([_events([(60, 4)] * 32)] * 3)
    result = melody_sets.report(melody_sets.set_overlaps(monotone), melody_sets.set_overlaps(varied_set))
    _, pitch_var = result["table"]["pitch"]
    assert pitch_var == 0.0  # all OAs are 1: no variance at all, >100% off the ground truth
    assert result["note_statistics"]["repeated_segment_ratio"] == pytest.approx(0.75)
    assert result["frame_pairs"] == {"pairs": 6, "one_empty": 0, "both_empty": 0}


def test_frame_pairs_with_an_empty_frame_are_counted(varied_set):
    # 8 bars, notes only in bars 0-1: frames [0-3] has notes, [2-5] and [4-7] are empty.
    sparse = _events([(60, 4), (64, 4)])
    overlaps = melody_sets.set_overlaps(np.stack([sparse, varied_set[0]]))
    assert overlaps.frame_pairs == {"pairs": 4, "one_empty": 1, "both_empty": 1}
    np.testing.assert_allclose(overlaps.per_melody["pitch"][0], [0.0, 1.0], atol=1e-9)  # the rule they follow
