"""The framewise overlapping-area metric (smdiff/evaluation/overlap.py) and events -> notes."""
import functools

import numpy as np
import pytest
from scipy import integrate, stats

from smdiff.data import melody
from smdiff.evaluation import notes as notes_lib
from smdiff.evaluation import overlap


def _numerical_overlap(mu1, sd1, mu2, sd2):
    """Integral of min of the two densities by adaptive quadrature, with the means as break points."""
    def density(x, mu, sd):
        return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))

    def integrand(x):
        return min(density(x, mu1, sd1), density(x, mu2, sd2))

    lo = min(mu1 - 12 * sd1, mu2 - 12 * sd2)
    hi = max(mu1 + 12 * sd1, mu2 + 12 * sd2)
    value, _ = integrate.quad(integrand, lo, hi, points=sorted({mu1, mu2}), limit=500, epsabs=1e-12)
    return value


@pytest.mark.parametrize(
    "mu1, sd1, mu2, sd2",
    [
        (60.0, 2.0, 62.0, 2.0),  # equal spreads: one crossing
        (62.0, 2.0, 60.0, 2.0),  # same, means swapped
        (60.0, 1.0, 63.0, 4.0),  # narrow below wide: two crossings
        (70.0, 5.0, 64.5, 0.7),  # wide above narrow
        (4.0, 1.5, 4.0, 3.0),  # equal means, different spreads
        (8.0, 0.3, 30.0, 9.0),  # far apart
    ],
)
def test_overlapping_area_matches_numerical_integration(mu1, sd1, mu2, sd2):
    closed_form = overlap.overlapping_area(mu1, sd1, mu2, sd2)
    assert closed_form == pytest.approx(_numerical_overlap(mu1, sd1, mu2, sd2), abs=1e-7)
    # Symmetric in its two Gaussians.
    assert overlap.overlapping_area(mu2, sd2, mu1, sd1) == pytest.approx(closed_form, abs=1e-12)


def test_overlapping_area_vectorized_and_limits():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.uniform(50, 80, 20), rng.uniform(50, 80, 20)
    sd1, sd2 = rng.uniform(0.5, 6, 20), rng.uniform(0.5, 6, 20)
    batched = overlap.overlapping_area(mu1, sd1, mu2, sd2)
    assert batched.shape == (20,)
    for i in range(20):
        assert batched[i] == pytest.approx(_numerical_overlap(mu1[i], sd1[i], mu2[i], sd2[i]), abs=1e-7)
    assert overlap.overlapping_area(60.0, 3.0, 60.0, 3.0) == pytest.approx(1.0)
    # Near-point Gaussians (the zero-variance floor): equal values overlap fully, different ones not at all.
    point = overlap.STD_FLOOR
    assert overlap.overlapping_area(62.0, point, 62.0, point) == pytest.approx(1.0)
    assert overlap.overlapping_area(62.0, point, 64.0, point) == pytest.approx(0.0, abs=1e-12)
    # A point inside a wide Gaussian: its mass lies under the wide density, so the OA is ~0 too.
    assert overlap.overlapping_area(62.0, point, 62.0, 3.0) == pytest.approx(0.0, abs=1e-5)
    # Spreads that differ only by rounding (a real case: two frames of the same notes in another order).
    assert overlap.overlapping_area(69.967, 3.93686382, 69.967, 3.93686382 * (1 + 4e-16)) == pytest.approx(1.0)
    assert overlap.overlapping_area(61.0, 2.0, 63.0, 2.0 * (1 + 1e-12)) == pytest.approx(2 * stats.norm.cdf(-0.5))
    with pytest.raises(ValueError, match="positive"):
        overlap.overlapping_area(60.0, 0.0, 61.0, 1.0)


def test_hand_computed_frames():
    """8 bars -> frames [0, 64), [32, 96), [64, 128) steps; bars 2-3 and 6-7 are silent."""
    notes = np.array([
        [0, 4, 60],  # bars 0-1: pitches 60, 62 (mean 61, std 1), durations 4, 8 (mean 6, std 2)
        [16, 24, 62],
        [64, 70, 62],  # bars 4-5: pitches 62, 64 (mean 63, std 1), durations 6, 10 (mean 8, std 2);
        [88, 98, 64],  # this note starts in frame 1 and is not cut at its end (step 96)
    ])
    frames = overlap.frame_statistics(notes, num_steps=128)
    np.testing.assert_array_equal(frames["num_notes"], [2, 2, 2])
    np.testing.assert_allclose(frames["pitch_mean"], [61, 63, 63])
    np.testing.assert_allclose(frames["pitch_std"], [1, 1, 1], atol=1e-5)
    np.testing.assert_allclose(frames["duration_mean"], [6, 8, 8])
    np.testing.assert_allclose(frames["duration_std"], [2, 2, 2], atol=1e-5)

    pitch_oa, duration_oa = overlap.sequence_overlaps(notes, num_steps=128)
    # Equal spreads: OA = 2 * Phi(-|mu1 - mu2| / (2 sd)).
    np.testing.assert_allclose(pitch_oa, [2 * stats.norm.cdf(-1.0), 1.0], atol=1e-5)
    np.testing.assert_allclose(duration_oa, [2 * stats.norm.cdf(-0.5), 1.0], atol=1e-5)


def test_empty_and_constant_frames():
    # One note in bar 0, silence after: frame 0 holds a zero-variance note, frames 1 and 2 are empty.
    notes = np.array([[0, 8, 67]])
    frames = overlap.frame_statistics(notes, num_steps=128)
    np.testing.assert_array_equal(frames["num_notes"], [1, 0, 0])
    np.testing.assert_allclose(frames["pitch_mean"], [67, overlap.EMPTY_FRAME_MEAN, overlap.EMPTY_FRAME_MEAN])
    pitch_oa, duration_oa = overlap.sequence_overlaps(notes, num_steps=128)
    np.testing.assert_allclose(pitch_oa, [0.0, 1.0], atol=1e-9)  # note vs silence, silence vs silence
    np.testing.assert_allclose(duration_oa, [0.0, 1.0], atol=1e-9)
    assert overlap.empty_frame_pairs(frames["num_notes"]) == {"pairs": 2, "one_empty": 1, "both_empty": 1}
    assert overlap.empty_frame_pairs(np.array([3, 0, 2, 0, 0, 1])) == {"pairs": 5, "one_empty": 4, "both_empty": 1}
    assert overlap.empty_frame_pairs(np.array([4])) == {"pairs": 0, "one_empty": 0, "both_empty": 0}
    # Without num_steps the melody ends at its last bar: 1 bar, no whole frame, no overlaps.
    assert overlap.sequence_overlaps(notes)[0].shape == (0,)
    with pytest.raises(ValueError, match="end_step"):
        overlap.frame_statistics(np.array([[5, 5, 60]]))


def test_events_to_notes():
    events = np.zeros(32, dtype=np.int32)
    events[0] = 60 - melody.PITCH_TO_CLASS  # note-on C4, held by NO_EVENTs
    events[4] = melody.NOTE_OFF
    events[8] = 62 - melody.PITCH_TO_CLASS  # ended by the next note-on
    events[10] = 64 - melody.PITCH_TO_CLASS  # held to the end of the melody
    np.testing.assert_array_equal(notes_lib.events_to_notes(events), [[0, 4, 60], [8, 10, 62], [10, 32, 64]])
    assert notes_lib.events_to_notes(np.zeros(32, dtype=np.int32)).shape == (0, 3)
    with pytest.raises(ValueError, match="classes"):
        notes_lib.events_to_notes(np.array([0, 95]))


@functools.lru_cache(maxsize=1)
def _corpus_melodies(num_tunes: int = 12) -> list[np.ndarray]:
    """Notes [n, 3] on the 16th grid of real 4/4 Essen folk tunes from the music21 corpus."""
    import music21

    from smdiff.data import corpus

    (collection, path), = [f for f in corpus.corpus_files(("essenFolksong",)) if f[1].stem == "altdeu10"]
    melodies = []
    for tune in corpus.split_tunes(collection, path, path.read_text(encoding="latin-1")):
        score = music21.converter.parse(tune.abc_text, format="abc")
        flat = score.flatten()
        if flat.getTimeSignatures()[0].ratioString != "4/4":
            continue
        notes = [(round(n.offset * 4), round((n.offset + n.quarterLength) * 4), n.pitch.midi)
                 for n in flat.notes if n.isNote and n.quarterLength > 0]
        melodies.append(np.array(notes, dtype=np.int64))
        if len(melodies) == num_tunes:
            break
    return melodies


def test_consistency_and_variance_of_training_set_against_itself_and_a_shuffle():
    melodies = _corpus_melodies()
    pitch_oas = [overlap.sequence_overlaps(m)[0] for m in melodies]
    assert sum(o.size for o in pitch_oas) > 30
    for reading in ("pooled", "per_sequence"):
        assert overlap.consistency_variance(pitch_oas, pitch_oas, reading) == (1.0, 1.0)
    # Pitches shuffled across all notes of all tunes: every frame then draws from the same pooled pitch
    # distribution, unlike a real tune's local pitch statistics; both readings must tell them apart.
    rng = np.random.default_rng(0)
    shuffled_pitches = rng.permutation(np.concatenate([m[:, 2] for m in melodies]))
    offsets = np.cumsum([0] + [len(m) for m in melodies])
    shuffled = [np.column_stack([m[:, :2], shuffled_pitches[a:b]]) for m, a, b in zip(melodies, offsets, offsets[1:])]
    shuffled_oas = [overlap.sequence_overlaps(m)[0] for m in shuffled]
    for reading in ("pooled", "per_sequence"):
        consistency, variance = overlap.consistency_variance(shuffled_oas, pitch_oas, reading)
        assert consistency < 0.95 and variance < 0.9, (reading, consistency, variance)


def test_readings_aggregate_differently():
    oas = [np.array([0.2, 0.4]), np.array([0.9, 0.9, 0.9, 0.9])]
    assert overlap.oa_statistics(oas, "pooled") == pytest.approx((np.mean([0.2, 0.4, 0.9, 0.9, 0.9, 0.9]),
                                                                   np.var([0.2, 0.4, 0.9, 0.9, 0.9, 0.9])))
    assert overlap.oa_statistics(oas, "per_sequence") == pytest.approx((0.6, np.var([0.3, 0.9])))
    # Relative similarity clips at 0 beyond 100% error (paper eq. 10).
    assert overlap.relative_similarity(0.5, 0.2) == 0.0
    assert overlap.relative_similarity(0.15, 0.2) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="reading"):
        overlap.oa_statistics(oas, "average")
    with pytest.raises(ValueError, match="non-finite"):
        overlap.oa_statistics([np.array([0.5, np.nan])])
    with pytest.raises(ValueError, match="shorter than two frames"):
        overlap.oa_statistics([np.array([])])


def test_similarity_interval_is_the_image_of_the_statistics_interval_folded_at_the_ground_truth():
    # Entirely below the ground truth 0.8: similarity rises with the statistic.
    assert overlap.similarity_interval((0.6, 0.7), 0.8) == pytest.approx((0.75, 0.875))
    # Entirely above it: similarity falls, so the ends swap.
    assert overlap.similarity_interval((0.9, 1.0), 0.8) == pytest.approx((0.75, 0.875))
    # Holding it: the best similarity, 1, lies inside; the worse end bounds it below.
    assert overlap.similarity_interval((0.7, 0.84), 0.8) == pytest.approx((0.875, 1.0))
    # Beyond 100% error on one side: clipped at 0 like the score itself.
    assert overlap.similarity_interval((1.2, 2.0), 0.8) == pytest.approx((0.0, 0.5))


def test_aligned_frame_overlaps_compare_frame_f_with_frame_f():
    # 8 bars, 3 frames (bars 0-3, 2-5, 4-7). b repeats a's first two bars' notes everywhere; a changes at bar 4.
    a = np.array([[0, 4, 60], [4, 8, 62], [64, 72, 70], [72, 80, 72]])
    b = np.array([[0, 4, 60], [4, 8, 62], [64, 68, 60], [68, 72, 62]])
    stats = [overlap.frame_statistics(notes, num_steps=128) for notes in (a, b)]
    pitch, duration = overlap.aligned_frame_overlaps(*stats)
    assert pitch[0] == pytest.approx(1.0) and pitch[1] < 0.01  # frame 0 the same; frame 1 {70,72} vs {60,62}
    assert duration[0] == pytest.approx(1.0) and duration[1] < 0.01  # 8-step notes vs 4-step notes
    np.testing.assert_allclose(pitch, overlap.overlapping_area(stats[0]["pitch_mean"], stats[0]["pitch_std"],
                                                               stats[1]["pitch_mean"], stats[1]["pitch_std"]))
    with pytest.raises(ValueError, match="frames"):
        overlap.aligned_frame_overlaps(stats[0], overlap.frame_statistics(a, num_steps=192))
