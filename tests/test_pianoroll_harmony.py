"""Harmony metrics (smdiff/evaluation/harmony.py) and the rule / transposed-Bach baselines
(smdiff/generators/pianoroll_baselines.py) on hand-made voices with known answers and on real chorales."""
import collections

import numpy as np
import pytest

from smdiff.data import chorales
from smdiff.data.keys import Key
from smdiff.data.pianoroll import PitchRange, notes_to_roll
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments
from smdiff.evaluation import harmony, scoring
from smdiff.evaluation import pianoroll_metrics as metrics
from smdiff.generators import pianoroll_baselines as baselines
from smdiff.generators.pianoroll import melody_mask

SPB = 1  # steps per beat in the hand-made examples: a step is a quarter, a bar 4 steps
REST = -1
# A C-major soprano (tonic triad outlined, so the melody alone names the key) over 8 quarters.
SOPRANO = [72, 76, 79, 77, 76, 74, 72, 72]


def _voices(*lines):
    return np.array(lines, np.int32)


def _count(voices, metric, reference=None):
    reference = voices if reference is None else reference
    return harmony.segment_counts(voices, reference, SPB)[metric]


def test_melody_alone_names_the_key():
    assert harmony.melody_key(_voices(SOPRANO, [REST] * 8)) == Key(0, "major")
    assert harmony.melody_key(_voices([REST] * 8, [60] * 8)) is None


def test_textbook_parallel_fifths_and_octaves():
    # C-F to D-G: soprano and alto a fifth apart both step up; soprano and bass two octaves apart both step up.
    voices = _voices([72, 72, 74, 74], [65, 65, 67, 67], [REST] * 4, [48, 48, 50, 50])
    assert _count(voices, "parallel_fifths") == (1, 1.0)
    assert _count(voices, "parallel_octaves") == (1, 1.0)
    # Contrary motion into the same intervals is correct voice leading: nothing counted.
    contrary = _voices([72, 72, 74, 74], [65, 65, 67, 67], [REST] * 4, [60, 60, 50, 50])
    assert _count(contrary, "parallel_octaves") == (0, 1.0)
    # Similar motion from a third into a fifth (a hidden fifth) is not a parallel one.
    hidden = _voices([72, 74], [69, 67], [REST] * 2, [REST] * 2)
    assert _count(hidden, "parallel_fifths")[0] == 0


def test_crossing_counts_steps_where_a_lower_voice_is_above():
    voices = _voices([72, 72, 72, 72], [67, 74, 67, REST], [60, 60, 60, 60], [48, 48, 48, 48])
    # Adjacent pairs sounding together: S/A 3 steps, A/T 3, T/B 4; the alto is above the soprano once.
    assert _count(voices, "crossing") == (1, 10)
    separated, dropped = harmony.voices_by_pitch_order(
        notes_to_roll(np.array([[0, 4, 72], [0, 4, 60], [0, 4, 48], [1, 2, 74], [1, 2, 67]]), 4,
                      PitchRange(40, 40)), 40)
    assert dropped == 1  # five pitches at step 1, four voices
    assert _count(separated, "crossing")[0] == 0  # pitch order cannot cross


def test_consonance_on_strong_beat_onsets():
    # Step 0 (beat 1): soprano C5 over alto A4 (a minor third, consonant) and bass G3 (a fourth against the bass,
    # dissonant). Step 2 (beat 3): soprano D5 over bass G2 (a compound fifth, consonant) and the alto's held A4
    # (a fourth against an inner voice, consonant). Steps 1 and 3 are weak beats and not checked.
    voices = _voices([72, 72, 74, 74], [69, 69, 69, 70], [REST] * 4, [55, 55, 43, 43])
    assert _count(voices, "consonance") == (3, 4)
    # A second against the melody on a strong beat is dissonant.
    assert _count(_voices([72, 72], [70, 70], [REST] * 2, [REST] * 2), "consonance") == (0, 1)


def test_out_of_key_range_distance_and_f1():
    alto_line = [67, 67, 66, 67, 67, 65, 64, 64]  # one F sharp in C major
    voices = _voices(SOPRANO, alto_line, [REST] * 8, [36] * 8)  # the bass's C2 is below E2
    assert _count(voices, "out_of_key") == (1, 6)  # alto G F# G F E, bass C
    # Against a given key (the whole soprano's, say) instead of the melody's own: in G major the F is the outsider.
    assert harmony.segment_counts(voices, voices, SPB, key=Key(7, "major"))["out_of_key"] == (1, 6)
    assert harmony.segment_counts(voices, voices, SPB, key=Key(2, "major"))["out_of_key"] == (2, 6)  # F, C
    assert _count(voices, "out_of_range") == (1, 6)
    reference = _voices(SOPRANO, [67] * 8, [REST] * 8, [48] * 8)
    # Generated durations: C 8, E 2, F 1, F# 1, G 4 (of 16); the reference's: C 8, G 8.
    assert _count(voices, "pitch_class_distance", reference) == pytest.approx((0.5 * (2 + 1 + 1 + 4) / 16, 1))
    # Only the alto's G at step 0 matches (the bass's C2 is not the reference's C3).
    assert _count(voices, "note_f1", reference) == (2 * 1, 6 + 2)
    silent = _voices(SOPRANO, *[[REST] * 8] * 3)
    assert _count(silent, "pitch_class_distance", reference) == (0.0, 0.0)  # left out, not scored 1


def test_ratio_bootstrap_pools_segments_and_reuses_the_draws():
    counts = {"a": {"m": (np.array([1.0, 3.0]), np.array([2.0, 4.0]))}}
    assert harmony.ratio(*counts["a"]["m"]) == pytest.approx(4 / 6)
    draws = metrics.bootstrap_draws(2, num_resamples=50)
    resampled = harmony.ratio_bootstrap(counts, draws)["a"]["m"]
    assert resampled.shape == (50,) and set(np.round(resampled, 6)) <= {0.5, 0.75, round(4 / 6, 6)}
    assert np.isnan(harmony.ratio(np.zeros(2), np.zeros(2)))


@pytest.fixture(scope="module")
def chorale_segments():
    """Voice-separated segments [n, 4, T, P] of four real chorales, untransposed, and the lowest pitch."""
    pieces = [chorales.parse_chorale(name, steps_per_quarter=4)
              for name in ("bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6")]
    assert all(isinstance(piece, chorales.Piece) for piece in pieces), pieces
    config = SegmentConfig()
    pitch_range = choose_pitch_range(pieces, config)
    skips = collections.Counter()
    tracks = np.stack([example["tracks"] for piece in pieces
                       for _, example in piece_segments(piece, "test", pitch_range, config, skips)])
    return tracks, pitch_range.lowest_pitch


def _scores(voices, references):
    return {metric: harmony.ratio(*pair) for metric, pair in harmony.score_segments(voices, references, 4).items()}


def test_bach_scores_like_bach(chorale_segments):
    tracks, lowest = chorale_segments
    bach = [harmony.voices_from_tracks(t, lowest) for t in tracks]
    scores = _scores(bach, bach)
    assert scores["parallel_fifths"] + scores["parallel_octaves"] < 0.05  # per bar: a rare slip at most
    assert scores["out_of_key"] < 0.15 and scores["consonance"] > 0.8 and scores["crossing"] < 0.03
    assert scores["pitch_class_distance"] == 0 and scores["note_f1"] == 1
    # The same alto a semitone higher: the metrics notice.
    shifted = [np.stack([v[0], np.where(v[1] >= 0, v[1] + 1, -1), v[2], v[3]]) for v in bach]
    worse = _scores(shifted, bach)
    assert worse["out_of_key"] > scores["out_of_key"] + 0.1 and worse["consonance"] < scores["consonance"] - 0.1
    assert worse["note_f1"] < 0.8


def test_rule_baseline_stays_in_key_holds_the_melody_note_and_never_crosses(chorale_segments):
    tracks, lowest = chorale_segments
    for segment in tracks:
        voices = harmony.voices_from_tracks(baselines.rule_harmonization(segment[0], 4, lowest), lowest)
        assert (voices[0] == harmony.voices_from_tracks(segment[:1], lowest)[0]).all()  # the melody is kept
        key = harmony.melody_key(voices)
        lower_sounding = voices[1:] >= 0  # [3, T]: the three lower voices sound together, only under the melody
        assert (lower_sounding.all(axis=0) == lower_sounding.any(axis=0)).all()
        assert not (lower_sounding[0] & (voices[0] < 0)).any()
        assert key.in_key()[voices[1:][voices[1:] >= 0] % 12].all()
        both = (voices[:-1] >= 0) & (voices[1:] >= 0)
        assert (voices[:-1][both] > voices[1:][both]).all()  # strictly descending: no crossing, no unison
        triads = [set(triad) for triad in baselines.diatonic_triads(key)]
        for step in range(0, voices.shape[1], 8):  # strong beats: a diatonic triad holding the melody's note
            if voices[1, step] >= 0 and any(voices[0, step] % 12 in triad for triad in triads):
                chord = set((voices[:, step] % 12).tolist())
                assert chord in triads and voices[0, step] % 12 in chord


def test_transposed_other_harmony_moves_to_the_key_and_keeps_the_melody(chorale_segments):
    tracks, lowest = chorale_segments
    moved = baselines.transposed_other_harmony(tracks[0], Key(2, "major"), tracks[-1], Key(0, "major"), lowest)
    assert (moved[0] == tracks[0][0]).all()
    original, result = (harmony.voices_from_tracks(t, lowest) for t in (tracks[-1], moved))
    sounding = original[1:] >= 0
    assert (result[1:][sounding] == original[1:][sounding] + 2).all()

    # Across modes the other voices come from the relative key: C major's lower voices under an A-minor soprano
    # stay where they are, under a B-minor one they move up 2.
    for key, shift in ((Key(9, "minor"), 0), (Key(11, "minor"), 2)):
        moved = harmony.voices_from_tracks(
            baselines.transposed_other_harmony(tracks[0], key, tracks[-1], Key(0, "major"), lowest), lowest)
        assert (moved[1:][sounding] == original[1:][sounding] + shift).all()


def test_other_segment_prefers_another_piece_in_the_same_mode():
    pieces = ["a", "a", "b", "c", "d"]
    keys = [Key(0, "major"), Key(0, "major"), Key(9, "minor"), Key(7, "major"), Key(2, "minor")]
    assert baselines.other_segment(0, pieces, keys) == 3  # from half the set on: not "a", not minor
    assert baselines.other_segment(2, pieces, keys) == 4
    # The only minor-mode piece of its set borrows from the other mode; a set of one piece has nothing to lend.
    assert baselines.other_segment(2, pieces[:4], keys[:4]) == 0
    with pytest.raises(ValueError, match="all of one piece"):
        baselines.other_segment(0, ["a", "a"], keys[:2])


def test_harmonization_voices_keep_the_melody_on_top():
    pitch_range = PitchRange(40, 40)
    melody = notes_to_roll(np.array([[0, 2, 72]]), 3, pitch_range)
    roll = notes_to_roll(np.array([[0, 3, 76], [0, 3, 65], [0, 1, 60], [2, 3, 50]]), 3, pitch_range)
    voices, dropped = harmony.harmonization_voices(np.maximum(roll, melody), melody, 40)
    # Above the melody nothing counts; where it rests (step 2) every cell is a lower voice, highest first.
    assert voices.tolist() == [[72, 72, -1], [65, 65, 76], [60, -1, 65], [-1, -1, 50]] and dropped == 0


def test_score_harmony_ranks_bach_above_noise_with_paired_intervals(chorale_segments):
    tracks, lowest = chorale_segments
    soprano = tracks[:, 0]
    noise = metrics.bernoulli_rolls(np.random.default_rng(0), soprano.shape, 0.07)
    outputs = {"bach_one_channel": tracks.max(axis=1), "bernoulli": np.maximum(soprano, noise), "melody_only": soprano}
    voice_separated = {"test_data": tracks, "rule": np.stack([baselines.rule_harmonization(s, 4, lowest)
                                                              for s in soprano])}
    values, intervals = scoring.score_harmony(outputs, voice_separated, soprano, 4, lowest, num_resamples=200)

    assert set(values) == set(intervals) == set(outputs) | set(voice_separated)
    assert values["test_data"]["harmony_note_f1"] == 1.0 and values["test_data"]["harmony_pitch_class_distance"] == 0.0
    # Bach's own notes read back by pitch order from one channel: nearly Bach (voice exchanges split a few notes).
    assert values["bach_one_channel"]["harmony_note_f1"] > 0.9
    assert values["bach_one_channel"]["harmony_pitch_class_distance"] < 0.05
    # Crossing only where the voices are exact; the melody alone has no generated note to be out of key.
    assert "harmony_crossing" not in values["bernoulli"] and "harmony_crossing" in values["rule"]
    assert np.isnan(values["melody_only"]["harmony_out_of_key"])
    assert np.isnan(intervals["melody_only"]["harmony_out_of_key"]["low"])
    for system, scores in values.items():
        for name, value in scores.items():
            if not np.isnan(value):
                assert intervals[system][name]["low"] <= value <= intervals[system][name]["high"], (system, name)
    # "beats" follows each metric's direction: Bach is more in key (lower) and more consonant (higher) than noise
    # in (nearly) every paired resample.
    assert intervals["test_data"]["harmony_out_of_key"]["beats_bernoulli"] > 0.95
    assert intervals["test_data"]["harmony_consonance"]["beats_bernoulli"] > 0.95
    assert "beats_bernoulli" not in intervals["test_data"]["harmony_crossing"]  # noise has no crossing score
    assert set(scoring.LOWER_IS_BETTER) >= {"harmony_out_of_key", "harmony_parallel_fifths", "out_of_key_rate"}
    assert "harmony_consonance" not in scoring.LOWER_IS_BETTER


def test_roll_scores_look_at_the_generated_cells_only(chorale_segments):
    tracks, lowest = chorale_segments
    rolls = tracks.max(axis=1).astype(np.float32)
    given = melody_mask(tracks[:, 0])
    outputs = {"bach": rolls, "given_only": np.where(given, rolls, 0).astype(np.float32)}
    overlaps = {name: metrics.roll_overlaps(r, lowest, 16) for name, r in outputs.items()}
    keys = [Key(0, "major")] * len(rolls)
    scores = scoring.score_rolls(outputs, overlaps, rolls, given, keys, overlaps["bach"], lowest)
    assert scores["bach"]["note_f1"] == 1.0 and scores["bach"]["pitch_class_distance"] == 0.0
    # The melody copied back scores nothing: its notes are given, not generated (whole rolls would give F1 ~0.4).
    assert scores["given_only"]["note_f1"] == 0.0 and scores["given_only"]["out_of_key_rate"] == 0.0
    assert scores["given_only"]["pitch_class_distance"] == 1.0  # an empty generation against Bach's lower voices
