"""Set-level Table-1 metrics on hand-built melodies whose answers are known, and their bootstrap intervals
on real corpus windows."""
import numpy as np
import pytest

from smdiff.data import melody
from smdiff.evaluation import melody_sets, overlap
from smdiff.evaluation.pianoroll_metrics import bootstrap_draws, grouped_bootstrap_draws
import real_latents


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


@pytest.fixture(scope="module")
def corpus_split_windows():
    """Real 8-bar folk-tune windows (stride one chunk): the first 30 tunes ('train') and the next 30."""
    return real_latents.corpus_windows(num_tunes=60, num_train_tunes=30)


@pytest.fixture(scope="module")
def corpus_events(corpus_split_windows):
    """Events [m, 128] of the real windows by split."""
    return {split: np.stack([w["events"].reshape(-1) for w in split_windows])
            for split, split_windows in corpus_split_windows.items()}


def test_bootstrap_intervals_hold_the_scores_narrow_with_more_melodies_and_tell_sets_apart(corpus_events):
    ground_truth = melody_sets.set_overlaps(corpus_events["train"])
    held = corpus_events["validation"]
    subset = held[np.random.default_rng(0).choice(len(held), 40, replace=False)]
    few, many = (melody_sets.report(melody_sets.set_overlaps(events), ground_truth) for events in (subset, held))
    other = melody_sets.report(melody_sets.set_overlaps(corpus_events["train"][:len(held)]), ground_truth)
    for reading in melody_sets.READINGS:
        for result in (few, many, other):
            for feature in melody_sets.FEATURES:
                interval = result[f"interval_{reading}"][feature]
                for name, value in zip(("C", "Var"), result[f"relative_{reading}"][feature]):
                    assert interval[name][0] <= value <= interval[name][1], (reading, feature, name)
                for name, value in zip(("mean_oa", "variance_oa"), result[f"absolute_{reading}"][feature]):
                    low, high = interval[name]
                    assert low < value < high, (reading, feature, name)
        for feature in melody_sets.FEATURES:
            # ~1/sqrt(n): 40 random melodies of the 307 give a mean-OA interval 1.8-2.8 times wider (the
            # variance's interval is itself too noisy at n=40 for a firm ratio).
            low, high = few[f"interval_{reading}"][feature]["mean_oa"]
            assert high - low > 1.5 * np.subtract(*many[f"interval_{reading}"][feature]["mean_oa"][::-1]), feature
            for name in ("mean_oa", "variance_oa", "C", "Var"):  # another real set, other intervals
                assert many[f"interval_{reading}"][feature][name] != other[f"interval_{reading}"][feature][name]


def test_bootstrap_interval_is_the_percentile_interval_of_explicitly_resampled_sets(corpus_events):
    ground_truth = melody_sets.set_overlaps(corpus_events["train"])
    samples = melody_sets.set_overlaps(corpus_events["validation"])
    result = melody_sets.report(samples, ground_truth, num_resamples=60, seed=3)
    draws = bootstrap_draws(len(corpus_events["validation"]), 60, 3)
    for reading in melody_sets.READINGS:
        for feature in melody_sets.FEATURES:
            oas = samples.per_melody[feature]
            resampled = np.array([overlap.oa_statistics(
                [oas[i] for i in np.repeat(np.arange(len(oas)), counts)], reading) for counts in draws])  # [R, 2]
            truth = overlap.oa_statistics(ground_truth.per_melody[feature], reading)
            interval = result[f"interval_{reading}"][feature]
            for column, (raw, score) in enumerate((("mean_oa", "C"), ("variance_oa", "Var"))):
                expected = np.percentile(resampled[:, column], [5, 95])
                np.testing.assert_allclose(interval[raw], expected, rtol=1e-9)
                similarities = [overlap.relative_similarity(v, truth[column]) for v in resampled[:, column]]
                assert interval[score][0] == pytest.approx(min(overlap.relative_similarity(v, truth[column])
                                                               for v in expected))
                assert interval[score][0] <= np.percentile(similarities, 5) + 1e-9  # the folded image is wider


def test_similarity_to_the_source_orders_copies_half_edits_and_unrelated_windows(corpus_events):
    sources = corpus_events["validation"]
    others = sources[np.random.default_rng(0).permutation(len(sources))]
    half = sources.shape[1] // 2
    half_edited = np.concatenate([sources[:, :half], others[:, half:]], axis=1)  # second 4 bars from another tune
    scores = {name: melody_sets.source_similarity(events, sources) for name, events in
              (("copy", sources), ("half", half_edited), ("unrelated", others))}
    for feature in melody_sets.FEATURES:
        assert scores["copy"][feature]["mean"] == pytest.approx(1.0)
        assert scores["copy"][feature]["interval"] == pytest.approx((1.0, 1.0))
        # frame 0 (bars 0-3) is the source's own, frame 2 (bars 4-7) another tune's: between copy and unrelated,
        # with intervals that do not overlap on this many windows
        half_low, half_high = scores["half"][feature]["interval"]
        assert scores["unrelated"][feature]["interval"][1] < half_low and half_high < 1.0, feature
        assert half_low <= scores["half"][feature]["mean"] <= half_high
    with pytest.raises(ValueError, match="source"):
        melody_sets.source_similarity(sources[:3], sources[:4])


def test_grouped_draws_take_whole_tunes_and_are_the_plain_draws_for_one_window_per_tune():
    tunes = np.array([b"b", b"a", b"b", b"c", b"a", b"b"])
    draws = grouped_bootstrap_draws(tunes, 200, 5)  # [200, 6]
    for tune in np.unique(tunes):
        columns = draws[:, tunes == tune]
        assert np.all(columns == columns[:, :1]), tune  # a tune's windows are drawn together
    # Each resample draws 3 tunes with replacement.
    per_tune = np.stack([draws[:, np.flatnonzero(tunes == tune)[0]] for tune in np.unique(tunes)], axis=1)
    assert np.all(per_tune.sum(1) == 3)
    np.testing.assert_array_equal(grouped_bootstrap_draws(np.arange(7), 50, 2), bootstrap_draws(7, 50, 2))


def test_resampling_tunes_widens_the_intervals_of_overlapping_windows(corpus_split_windows, corpus_events):
    """The overlapping windows of one tune share frames, so a window bootstrap treats correlated windows as
    independent: resampling whole tunes must give wider intervals, and the same ones when each tune has
    one window."""
    ground_truth = melody_sets.set_overlaps(corpus_events["train"])
    held = corpus_events["validation"]
    tunes = np.array([w["song_id"] for w in corpus_split_windows["validation"]])
    assert len(np.unique(tunes)) < len(held) / 3  # several overlapping windows per tune
    samples = melody_sets.set_overlaps(held)
    by_window = melody_sets.report(samples, ground_truth)
    by_tune = melody_sets.report(samples, ground_truth, groups=tunes)
    assert by_tune["table"] == by_window["table"]  # only the intervals change
    for feature in melody_sets.FEATURES:
        widths = [np.subtract(*result["interval_pooled"][feature]["mean_oa"][::-1]) for result in (by_window, by_tune)]
        assert widths[1] > 1.3 * widths[0], (feature, widths)
    one_per_tune = melody_sets.report(samples, ground_truth, groups=np.arange(len(held)))
    for feature in melody_sets.FEATURES:  # the same draws (sums in another order: equal to rounding)
        for name, interval in by_window["interval_pooled"][feature].items():
            np.testing.assert_allclose(one_per_tune["interval_pooled"][feature][name], interval, rtol=1e-12)
    with pytest.raises(ValueError, match="groups"):
        melody_sets.report(samples, ground_truth, groups=tunes[:-1])
