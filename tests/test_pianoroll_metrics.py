"""Piano-roll metrics (smdiff/evaluation/pianoroll_metrics.py) on hand-made rolls, and the OA bootstrap."""
import numpy as np
import pytest

from smdiff.data.keys import Key
from smdiff.evaluation import overlap
from smdiff.evaluation import pianoroll_metrics as metrics

LOWEST = 48  # column j is MIDI pitch 48 + j (C3 = column 0)


def _roll(notes, steps=16, pitches=24):
    """A roll [steps, pitches] from (start, end, column) notes."""
    roll = np.zeros((steps, pitches), np.float32)
    for start, end, column in notes:
        roll[start:end, column] = 1
    return roll


def test_note_matching_needs_onset_and_pitch():
    reference = _roll([(0, 4, 0), (4, 8, 4), (8, 12, 7)])[None]
    generated = _roll([(0, 2, 0), (4, 8, 5), (12, 16, 7)])[None]  # only the first matches (length is free)
    scores = metrics.note_precision_recall_f1(generated, reference, LOWEST)
    assert scores == pytest.approx({"note_precision": 1 / 3, "note_recall": 1 / 3, "note_f1": 1 / 3})
    assert metrics.note_precision_recall_f1(reference, reference, LOWEST)["note_f1"] == 1.0


def test_pitch_class_distance_is_total_variation():
    c_and_e = _roll([(0, 8, 0), (8, 16, 4)])[None]
    assert metrics.pitch_class_distance(c_and_e, c_and_e, LOWEST) == 0.0
    c_an_octave_up = _roll([(0, 8, 12), (8, 16, 16)])[None]  # same pitch classes
    assert metrics.pitch_class_distance(c_an_octave_up, c_and_e, LOWEST) == 0.0
    half_d = _roll([(0, 8, 0), (8, 16, 2)])[None]  # E's half of the weight moved to D
    assert metrics.pitch_class_distance(half_d, c_and_e, LOWEST) == pytest.approx(0.5)
    assert metrics.pitch_class_distance(np.zeros_like(c_and_e), c_and_e, LOWEST) == 1.0


def test_out_of_key_rate_counts_notes_outside_the_scale():
    c_c_sharp_d_e = _roll([(0, 4, 0), (4, 8, 1), (8, 12, 2), (12, 16, 4)])[None]
    assert metrics.out_of_key_rate(c_c_sharp_d_e, [Key(0, "major")], LOWEST) == pytest.approx(0.25)
    # D major has C# and not C.
    assert metrics.out_of_key_rate(c_c_sharp_d_e, [Key(2, "major")], LOWEST) == pytest.approx(0.25)
    assert metrics.out_of_key_rate(np.zeros_like(c_c_sharp_d_e), [Key(0, "major")], LOWEST) == 0.0


OAS = [np.array([0.9, 0.8]), np.array([0.5]), np.array([]), np.array([0.7, 0.6, 0.95])]


@pytest.mark.parametrize("reading", ["pooled", "per_sequence"])
def test_resampled_statistics_equal_those_of_the_drawn_set(reading):
    draws = np.array([[1, 1, 1, 1], [2, 0, 5, 1], [0, 3, 0, 0]])
    means, variances = overlap.resampled_oa_statistics(OAS, draws, reading)
    for row, mean, variance in zip(draws, means, variances):
        drawn = [oas for oas, count in zip(OAS, row) for _ in range(count)]
        assert (mean, variance) == pytest.approx(overlap.oa_statistics(drawn, reading))
    only_empty = overlap.resampled_oa_statistics(OAS, np.array([[0, 0, 4, 0]]), reading)[0]
    assert np.isnan(only_empty).all()


def test_bootstrap_pairs_the_systems_and_brackets_the_scores():
    rng = np.random.default_rng(0)
    train = ([rng.uniform(0.6, 1.0, 2) for _ in range(200)], [rng.uniform(0.5, 1.0, 2) for _ in range(200)])
    like_train = ([rng.uniform(0.6, 1.0, 2) for _ in range(60)], [rng.uniform(0.5, 1.0, 2) for _ in range(60)])
    constant = ([np.full(2, 0.3) for _ in range(60)], [np.full(2, 0.3) for _ in range(60)])
    systems = {"model": like_train, "bernoulli": constant}
    resampled = metrics.oa_bootstrap(systems, train, num_resamples=200, seed=1)
    assert set(resampled["model"]) == set(metrics.oa_scores(like_train, train))
    assert all(values.shape == (200,) for values in resampled["model"].values())
    summary = metrics.bootstrap_summary(resampled)
    point = metrics.oa_scores(like_train, train)
    for name, entry in summary["model"].items():
        assert entry["low"] <= point[name] <= entry["high"], name
        assert entry["beats_bernoulli"] == 1.0, name  # a constant 0.3 is far from train's mean and variance
    assert "beats_bernoulli" not in summary["bernoulli"]["pitch_consistency/pooled"]
    # Against itself on the same draws a system never comes out ahead: the comparison is paired.
    assert metrics.bootstrap_summary(metrics.oa_bootstrap({"model": like_train, "bernoulli": like_train}, train,
                                                          num_resamples=50))["model"]["pitch_variance/pooled"][
        "beats_bernoulli"] == 0.0
    with pytest.raises(ValueError, match="same segments"):
        metrics.oa_bootstrap({"model": like_train, "bernoulli": (constant[0][:5], constant[1][:5])}, train)
