"""Voices as parts: chorale rolls with one channel per voice [T, P, 4] (S, A, T, B), the U-Net and binomial
diffusion on them, per-channel conditioning masks, harmonization as generating the lower voices' channels, and
harmony metrics that read the channels as exact voices; on real chorales from music21's corpus."""
import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff import pianoroll_eval
from smdiff.data import chorales
from smdiff.data.pianoroll import channels_to_tracks, tracks_to_channels
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments, roll_statistics
from smdiff.diffusion import conditioning
from smdiff.evaluation import scoring
from smdiff.generators.pianoroll import PianorollGenerator
from smdiff.generators.pianoroll_baselines import voices_to_tracks
from smdiff.models.params import count_params
from smdiff.models.unet import UNet, UNetConfig
from smdiff.tasks.binomial import BinomialTask
from pianoroll_builds import build_on_slice

CHORALES = ("bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6")
SEGMENTS = SegmentConfig(segment_quarters=8, stride_quarters=8, transpositions=(-1, 0, 1))
TINY = UNetConfig(base_width=8, width_multipliers=(1, 2, 2), blocks_per_level=1, attention_heads=2,
                  attention_head_width=8, num_steps=20, conditioned=True)


@pytest.fixture(scope="module")
def pieces():
    parsed = [chorales.parse_chorale(name, SEGMENTS.steps_per_quarter) for name in CHORALES]
    assert all(isinstance(piece, chorales.Piece) for piece in parsed), parsed
    return parsed


def _examples(pieces, split, voice_channels, config=SEGMENTS):
    pitch_range = choose_pitch_range(pieces, config)
    return [example for piece in pieces for _, example in
            piece_segments(piece, split, pitch_range, config, collections.Counter(), voice_channels)]


@pytest.fixture(scope="module")
def voice_rolls(pieces):
    """Real 8-quarter voice-channel segments float [n, 32, P, 4] (test split: untransposed)."""
    return np.stack([example["roll"] for example in _examples(pieces, "test", True)]).astype(np.float32)


def test_voice_rolls_merge_to_the_merged_roll(pieces):
    merged, voiced = _examples(pieces, "train", False), _examples(pieces, "train", True)
    assert len(merged) == len(voiced) > 0
    for plain, channels in zip(merged, voiced):
        assert channels["roll"].shape == (*plain["roll"].shape, 4) and channels["roll"].dtype == np.uint8
        np.testing.assert_array_equal(channels["roll"].max(axis=-1), plain["roll"])
        np.testing.assert_array_equal(channels_to_tracks(channels["roll"]), plain["tracks"])  # channel v = voice v
        assert {k: v for k, v in channels.items() if k != "roll"}.keys() == {k for k in plain if k != "roll"}
        assert all(np.array_equal(channels[k], plain[k]) for k in plain if k != "roll")
    assert {e["transpose"] for e in voiced} == {-1, 0, 1}
    # The soprano channel is the top voice: at most one pitch per step, and it is the merged roll's highest one.
    soprano = np.stack([e["roll"][..., 0] for e in voiced])
    assert soprano.sum(axis=-1).max() == 1
    statistics = roll_statistics(e["roll"] for e in voiced)
    merged_statistics = roll_statistics(e["roll"] for e in merged)
    assert statistics["merged_density"] == pytest.approx(merged_statistics["density"])
    assert statistics["mean_polyphony"] == merged_statistics["mean_polyphony"]
    assert statistics["density"] < 0.5 * merged_statistics["density"]  # a quarter, less the voices' unisons
    assert "merged_density" not in merged_statistics


def test_builder_config_is_the_merged_one_with_voice_channels():
    from tfds_builders.pianorolls.pianorolls import Pianorolls

    configs = {config.name: config for config in Pianorolls.BUILDER_CONFIGS}
    voices, merged = configs["bach_chorales_voices"], configs["bach_chorales"]
    assert voices.voice_channels and not merged.voice_channels
    assert dataclasses.replace(voices, name=merged.name, description=merged.description,
                               voice_channels=False) == merged


@pytest.mark.slow
def test_built_voices_dataset_merges_to_the_built_merged_dataset(pieces, tmp_path, monkeypatch):
    """Both configs built on the same real chorales (a corpus slice, so wider validation/test fractions): the same
    splits and segments, and the voice channels merge to the merged dataset's rolls."""
    more = [chorales.parse_chorale(name, 4) for name in ("bach/bwv267", "bach/bwv281", "bach/bwv40.8",
                                                          "bach/bwv248.12-2", "bach/bwv38.6", "bach/bwv244.10")]
    corpus_slice = [piece for piece in pieces + more if isinstance(piece, chorales.Piece)]
    segment = SegmentConfig(transpositions=(0, 1), validation_fraction=0.3, test_fraction=0.3)
    built = build_on_slice(corpus_slice, ("bach_chorales", "bach_chorales_voices"), lambda config: segment,
                           str(tmp_path), monkeypatch)
    merged, voices = built["bach_chorales"], built["bach_chorales_voices"]
    assert voices["metadata"]["merged_density"] == pytest.approx(merged["metadata"]["density"])
    assert voices["metadata"]["num_pitches"] == merged["metadata"]["num_pitches"]
    for split in ("train", "validation", "test"):
        assert len(voices[split]) == len(merged[split]) > 0, split
        for channels, plain in zip(voices[split], merged[split]):
            assert (channels["piece"], channels["start_step"]) == (plain["piece"], plain["start_step"])
            assert channels["roll"].shape == (*plain["roll"].shape, 4)
            np.testing.assert_array_equal(channels["roll"].max(axis=-1), plain["roll"])
            np.testing.assert_array_equal(tracks_to_channels(plain["tracks"]), channels["roll"])


def test_unet_channels_follow_the_data_and_single_channel_counts_are_unchanged():
    x = jnp.zeros((1, 32, 16, 4))
    params = jax.eval_shape(lambda: UNet(TINY).init(jax.random.PRNGKey(0), x, jnp.array([1]), x,
                                                    jnp.zeros(x.shape, bool)))["params"]
    kernels = [leaf.shape for leaf in jax.tree.leaves(params) if len(leaf.shape) == 4]
    assert kernels[0] == (7, 7, 12, 8)  # x_t, known, mask: three input channels per voice
    assert params["Conv_" + str(max(int(k.split("_")[1]) for k in params if k.startswith("Conv_")))]["kernel"].shape \
        == (1, 1, 8, 4)  # one logit per cell of each voice
    # The CPU U-Nets (gin/models/unet_cpu.gin) on single-channel rolls: the counts measured before voice channels.
    cpu = dict(base_width=16, blocks_per_level=1, attention_head_width=16)
    roll = jnp.zeros((1, 64, 56))
    for conditioned, expected in ((False, 813_073), (True, 814_641)):
        extra = (roll, jnp.zeros(roll.shape, bool)) if conditioned else ()
        shapes = jax.eval_shape(lambda c=conditioned, e=extra: UNet(UNetConfig(**cpu, conditioned=c)).init(
            jax.random.PRNGKey(0), roll, jnp.array([1]), *e))["params"]
        assert count_params(shapes) == expected


def test_conditioning_flows_across_voice_channels(voice_rolls):
    """The soprano channel given changes the predicted alto, tenor and bass: the channels are one image."""
    rolls = jnp.asarray(voice_rolls[:2])
    model = UNet(TINY)
    mask = conditioning.voice_channel_mask(rolls.shape, 0)
    params = model.init(jax.random.PRNGKey(0), rolls, jnp.array([5, 5]), rolls, mask)["params"]
    params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
    x_t = jax.random.bernoulli(jax.random.PRNGKey(2), 0.1, rolls.shape).astype(jnp.float32)
    logits = model.apply({"params": params}, x_t, jnp.array([5, 5]), rolls, mask)
    assert logits.shape == rolls.shape
    moved_soprano = rolls.at[..., 0].set(jnp.roll(rolls[..., 0], 2, axis=-1))  # the melody two semitones up
    shifted = model.apply({"params": params}, x_t, jnp.array([5, 5]), moved_soprano, mask)
    assert not np.allclose(logits[..., 1:], shifted[..., 1:])
    hidden = model.apply({"params": params}, x_t, jnp.array([5, 5]), rolls.at[..., 1:].set(0), mask)
    np.testing.assert_allclose(logits, hidden, rtol=1e-5, atol=1e-5)  # the ungiven voices' known cells are unread


def test_random_masks_per_voice_channel(voice_rolls):
    rolls = jnp.asarray(np.repeat(voice_rolls, 40 // len(voice_rolls) + 1, axis=0)[:40])  # [40, T, P, 4]
    masks = np.asarray(conditioning.random_masks(jax.random.PRNGKey(3), rolls))
    assert masks.shape == rolls.shape
    num_steps, voices = rolls.shape[1], np.arange(4)
    kinds = collections.Counter()
    for mask in masks:
        per_voice = mask.all(axis=(0, 1))  # [4]: voices given whole
        steps = mask.any(axis=(1, 2))  # [T]: steps with a given cell
        if not mask.any():
            kinds["nothing"] += 1
        elif list(per_voice) == list(voices == 0) and mask[..., 0].all() and not mask[..., 1:].any():
            kinds["soprano"] += 1
        elif list(per_voice) == list(voices == 3) and not mask[..., :3].any():
            kinds["bass"] += 1
        else:  # a time mask: whole steps over every pitch and voice
            np.testing.assert_array_equal(mask, np.broadcast_to(steps[:, None, None], mask.shape))
            given = np.flatnonzero(steps)
            kinds["prefix" if steps[0] and np.array_equal(given, np.arange(len(given))) else "span"] += 1
            assert len(given) < num_steps
    assert set(kinds) == {"nothing", "soprano", "bass", "prefix", "span"}, kinds


@pytest.fixture(scope="module")
def voice_generator(voice_rolls):
    """An untrained conditioned tiny U-Net on the voice rolls (the clamping and routing are under test)."""
    task = BinomialTask(model=UNet(TINY), density=float(voice_rolls.mean()), loss_type="bce")
    params = task.init(jax.random.PRNGKey(0), {"roll": voice_rolls[:2]})
    return PianorollGenerator(task, params, voice_rolls.shape[1:], num_sampling_steps=5, conditioning="model")


def test_harmonization_keeps_the_soprano_channel_and_generates_the_others(voice_generator, voice_rolls):
    soprano = voice_rolls[:4, ..., 0]  # [4, T, P]
    harmonized = np.asarray(voice_generator.harmonize(jax.random.PRNGKey(4), soprano))
    assert harmonized.shape == voice_rolls[:4].shape
    np.testing.assert_array_equal(harmonized[..., 0], soprano)
    assert harmonized[..., 1:].any()
    continued = np.asarray(voice_generator.infill(jax.random.PRNGKey(5), voice_rolls[:4], np.arange(32) < 16))
    np.testing.assert_array_equal(continued[:, :16], voice_rolls[:4, :16])
    with pytest.raises(ValueError, match="melody must be rolls"):
        voice_generator.harmonize(jax.random.PRNGKey(4), voice_rolls[:4])
    # The task's loss runs on voice rolls (per-channel random masks) and is finite.
    loss, _ = voice_generator.task.loss(jax.device_get(voice_generator.params), {"roll": voice_rolls[:4]},
                                        jax.random.PRNGKey(6), 0)
    assert np.isfinite(float(loss))


def test_task_conditions_per_channel(voice_rolls):
    tracks = channels_to_tracks(voice_rolls)
    conditions = pianoroll_eval.task_conditions({"roll": voice_rolls, "tracks": tracks})
    known, given = conditions["harmonization"]
    np.testing.assert_array_equal(given, np.broadcast_to(np.arange(4) == 0, voice_rolls.shape))
    np.testing.assert_array_equal(known[..., 0], voice_rolls[..., 0])
    assert not known[..., 1:].any()  # the lower voices are not handed over
    _, middle = conditions["infilling"]
    assert middle.shape == voice_rolls.shape and middle[:, :8].all() and not middle[:, 8:24].any()
    assert not conditions["unconditional"][1].any()


def _constructed_harmonization():
    """One 16-step segment, voices as MIDI pitches (-1 rest): the alto above the soprano for 8 steps, and the
    tenor and bass a fifth apart moving up together at step 8 (one parallel fifth)."""
    voices = np.array([[67] * 16, [69] * 8 + [64] * 8, [55] * 8 + [57] * 8, [48] * 8 + [50] * 8])
    reference = np.array([[67] * 16, [64] * 16, [59] * 16, [48] * 16])
    return voices, reference


def test_voice_metrics_are_exact_on_a_constructed_case():
    voices, reference = _constructed_harmonization()
    lowest, num_pitches = 40, 40
    model = tracks_to_channels(voices_to_tracks(voices, num_pitches, lowest))[None]  # [1, 16, P, 4]
    bach = voices_to_tracks(reference, num_pitches, lowest)[None]  # [1, 4, 16, P]
    soprano = bach[:, 0].astype(np.float32)
    values, _ = scoring.score_harmony({"model_merged": model.max(axis=-1)},
                                      {"test_data": bach, "model": channels_to_tracks(model)}, soprano,
                                      steps_per_beat=4, lowest_pitch=lowest, num_resamples=10)
    exact = values["model"]
    assert exact["harmony_crossing"] == pytest.approx(8 / 48)  # 8 of the 3 x 16 adjacent-pair steps
    assert exact["harmony_parallel_fifths"] == pytest.approx(1.0)  # one in one bar
    assert exact["harmony_parallel_octaves"] == 0
    # Strong beats 0 and 8 (at 8 only the lower voices' onsets): the alto a major second above the soprano
    # (dissonant) then a minor third below; the tenor an octave below, then a minor seventh; the bass a compound
    # fifth, then a compound fourth (dissonant against the bass): 3 of 6 consonant.
    assert exact["harmony_consonance"] == pytest.approx(3 / 6)
    # The merged roll read by pitch order cannot see the alto above the melody nor the crossing.
    merged = values["model_merged"]
    assert "harmony_crossing" not in merged
    assert merged["harmony_note_f1"] != exact["harmony_note_f1"]


def test_evaluation_of_voice_rolls_merges_them_and_reads_exact_voices(pieces):
    """A 'model' that returns the real chorales: its merged scores are the merged evaluation's, its exact-voice
    harmony row is Bach's own, and its pitch-order row is what a merged model returning Bach would get."""
    config = SegmentConfig(segment_quarters=16, stride_quarters=8)
    fields = ("roll", "tracks", "key_tonic", "key_mode", "piece")
    segments = {}
    for voice_channels in (False, True):
        examples = _examples(pieces, "test", voice_channels, config)
        segments[voice_channels] = {field: np.stack([e[field] for e in examples]) for field in fields}
    pitch_range = choose_pitch_range(pieces, config)
    density = float(segments[False]["roll"].mean())
    results = {}
    for voice_channels, test in segments.items():
        generated = {task: test["roll"].astype(bool) for task in pianoroll_eval.TASKS}
        results[voice_channels], _ = pianoroll_eval.evaluate(
            generated, test, test["roll"][:8], density, pitch_range, config.steps_per_quarter, num_resamples=20)
    merged, voiced = results[False], results[True]
    for task in pianoroll_eval.TASKS:
        for system, scores in merged[task].items():
            expected = {metric: value for metric, value in scores.items()
                        if not (task == "harmonization" and system == "model" and metric.startswith("harmony_"))}
            got = {m: voiced[task][system][m] for m in expected}
            assert got == pytest.approx(expected, nan_ok=True), (task, system)
    harmonization = voiced["harmonization"]
    bach = {m: v for m, v in harmonization["test_data"].items() if m.startswith("harmony_")}
    assert {m: harmonization["model"][m] for m in bach} == pytest.approx(bach, nan_ok=True)
    assert harmonization["model"]["harmony_note_f1"] == 1.0
    pitch_order = {m: v for m, v in merged["harmonization"]["model"].items() if m.startswith("harmony_")}
    assert harmonization["model_merged"] == pytest.approx(pitch_order, nan_ok=True)
    assert "harmony_crossing" in harmonization["model"] and "harmony_crossing" not in harmonization["model_merged"]
