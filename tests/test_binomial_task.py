"""A short real training run of the binomial-diffusion U-Net on Bach chorales, then its generator."""
import collections

import jax
import numpy as np
import pytest
import tensorflow as tf

from smdiff.training import loop as train_module
from smdiff.data import chorales
from smdiff import pianoroll_eval
from smdiff.diffusion import binomial
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments, roll_statistics
from smdiff.generators.pianoroll import PianorollGenerator, melody_mask
from smdiff.models.unet import UNet, UNetConfig
from smdiff.tasks.binomial import BinomialTask
from smdiff.training.optimizer import OptimizerConfig

CHORALES = ("bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6", "bach/bwv267", "bach/bwv281")
SEGMENTS = SegmentConfig(segment_quarters=8, stride_quarters=4, transpositions=(-1, 0, 1))
TINY = UNetConfig(base_width=8, width_multipliers=(1, 2, 2), blocks_per_level=1, attention_heads=2,
                  attention_head_width=8, num_steps=100)


@pytest.fixture(scope="module")
def chorale_segments():
    pieces = [chorales.parse_chorale(name, SEGMENTS.steps_per_quarter) for name in CHORALES]
    pitch_range = choose_pitch_range(pieces, SEGMENTS)
    skips = collections.Counter()
    examples = [example for piece in pieces for _, example in piece_segments(piece, "train", pitch_range, SEGMENTS, skips)]
    rolls = np.stack([example["roll"] for example in examples])  # [n, 32, P]
    melodies = np.stack([example["tracks"][0] for example in examples])  # soprano [n, 32, P]
    return rolls, melodies, roll_statistics(iter(rolls))["density"]


@pytest.fixture(scope="module")
def four_bar_segments():
    """The chorales as untransposed 4-bar test segments (the evaluation's OA needs 2-bar frames, 1-bar hop)."""
    pieces = [chorales.parse_chorale(name, SEGMENTS.steps_per_quarter) for name in CHORALES]
    pitch_range = choose_pitch_range(pieces, SEGMENTS)  # the trained model's pitch axis
    config = SegmentConfig(segment_quarters=16, stride_quarters=8)
    examples = [example for piece in pieces
                for _, example in piece_segments(piece, "test", pitch_range, config, collections.Counter())]
    fields = ("roll", "tracks", "key_tonic", "key_mode", "piece")
    return {field: np.stack([example[field] for example in examples]) for field in fields}, pitch_range


@pytest.fixture(scope="module")
def trained(chorale_segments, tmp_path_factory):
    rolls, _, density = chorale_segments
    task = BinomialTask(model=UNet(TINY), density=density, loss_type="bce")
    dataset = tf.data.Dataset.from_tensor_slices({"roll": rolls})
    result = train_module.train(
        str(tmp_path_factory.mktemp("binomial")), task, dataset, None,
        optimizer=OptimizerConfig(learning_rate=3e-3, decay_rate=1.0), global_batch_size=8, num_train_steps=40,
        log_every_steps=10, checkpoint_every_steps=40, async_checkpointing=False)
    return task, result


@pytest.mark.slow
def test_training_on_chorales_lowers_the_loss_below_the_density_guess(trained, chorale_segments):
    _, result = trained
    _, _, density = chorale_segments
    # Predicting every cell as Bernoulli(r) scores the binary entropy of r; the mean loss over the last
    # 10 steps must beat it clearly, which needs the network to read x_t.
    entropy = -(density * np.log(density) + (1 - density) * np.log(1 - density))
    assert result.train_metrics["train/bce"] < 0.8 * entropy, (result.train_metrics, entropy)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["posterior", "paper"])
def test_generator_keeps_given_cells_exactly(trained, chorale_segments, sampler):
    task, result = trained
    rolls, melodies, _ = chorale_segments
    generator = PianorollGenerator(task, result.state.params, rolls.shape[1:], sampler, num_sampling_steps=10)
    known, melody = rolls[:4], melodies[:4]
    prefix = np.arange(32) < 16
    continued = np.asarray(generator.infill(jax.random.PRNGKey(0), known, prefix))
    np.testing.assert_array_equal(continued[:, :16], known[:, :16])
    harmonized = np.asarray(generator.harmonize(jax.random.PRNGKey(1), melody))
    given = melody_mask(melody)
    np.testing.assert_array_equal(harmonized[given], melody[given])
    assert harmonized[~given].any()  # voices were added below the melody
    assert set(np.unique(continued)) <= {0.0, 1.0}


def test_melody_mask_fixes_the_melody_and_everything_above_it():
    melody = np.zeros((3, 5), np.float32)
    melody[0, 2] = melody[1, 4] = 1  # frame 2 rests
    np.testing.assert_array_equal(melody_mask(melody), [[0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])


@pytest.mark.slow
def test_evaluation_scores_every_task_with_intervals_and_writes_the_rolls(trained, four_bar_segments, tmp_path):
    task, result = trained
    segments, pitch_range = four_bar_segments
    # Two segments of each chorale, so that the transposed-Bach row can borrow another piece's voices in each mode.
    first_of_piece = [np.flatnonzero(segments["piece"] == piece)[:2] for piece in dict.fromkeys(segments["piece"])]
    test = {field: values[np.concatenate(first_of_piece)] for field, values in segments.items()}
    generator = PianorollGenerator(task, result.state.params, test["roll"].shape[1:], num_sampling_steps=5)
    generated_dir = str(tmp_path / pianoroll_eval.GENERATED)
    for shard_id in range(2):  # two shards, as two processes would make them
        pianoroll_eval.generate(generator, test, generated_dir, chunk_size=6, shard_id=shard_id, num_shards=2)
    assert len(test["roll"]) == 12
    assert len(list((tmp_path / pianoroll_eval.GENERATED).glob("*/DONE.json"))) == 5 * 2  # 5 tasks x 2 chunks
    lost = tmp_path / pianoroll_eval.GENERATED / "infilling-00001-of-00002"
    made = (lost / "rolls.npz").read_bytes()
    (lost / "DONE.json").unlink()  # as if the process making it had been killed before its marker
    with pytest.raises(FileNotFoundError, match="infilling-00001-of-00002"):
        pianoroll_eval.load_generated(generated_dir, 12, 6)
    pianoroll_eval.generate(generator, test, generated_dir, chunk_size=6, shard_id=1, num_shards=2)
    assert (lost / "rolls.npz").read_bytes() == made  # made again, the same bytes
    results, uncertainty = pianoroll_eval.evaluate(
        pianoroll_eval.load_generated(generated_dir, 12, 6), test, segments["roll"].astype(np.float32), density=0.07, pitch_range=pitch_range,
        steps_per_quarter=SEGMENTS.steps_per_quarter, output_dir=str(tmp_path), num_midi=2, num_resamples=100)

    tasks = ("unconditional", "harmonization", "infilling", "continuation", "variation")
    assert tuple(results) == tuple(uncertainty) == tasks
    assert set(results["infilling"]) == {"model", "bernoulli", "test_data"}
    assert set(results["harmonization"]) == {"model", "bernoulli", "melody_only", "rule", "transposed_other_bach",
                                             "test_data"}
    for task_name in tasks:
        for system, intervals in uncertainty[task_name].items():
            assert set(intervals) == {k for k in results[task_name][system] if "/" in k or k.startswith("harmony_")}, (
                task_name, system)
            # NaN: nothing to score in any resample (the melody alone has no generated note to be out of key).
            assert all(entry["low"] <= entry["high"] or np.isnan(entry["low"]) for entry in intervals.values())
            assert all(0.0 <= entry["low"] and entry["high"] <= 1.0 for k, entry in intervals.items() if "/" in k)
    # Harmony metrics with intervals on every harmonization row; Bach is the reference, crossing only where the
    # voices are exact (Bach, the rule, the transposed voices), not read off a single-channel roll by pitch order.
    harmonization = results["harmonization"]
    assert harmonization["test_data"]["harmony_note_f1"] == 1.0
    assert harmonization["test_data"]["harmony_pitch_class_distance"] == 0.0
    assert harmonization["rule"]["harmony_crossing"] == 0.0  # close position under the melody
    assert "harmony_crossing" not in harmonization["model"] and "harmony_crossing" in harmonization["test_data"]
    assert 0.0 <= harmonization["model"]["harmony_out_of_key"] <= 1.0
    interval = uncertainty["harmonization"]["model"]["harmony_out_of_key"]
    assert interval["low"] <= harmonization["model"]["harmony_out_of_key"] <= interval["high"]
    # The saved rolls are the scored ones: the middle half of the infilled rolls is new, the rest is given.
    saved = np.load(tmp_path / "rolls" / "infilling.npz")
    infilled, original = saved["model"], saved["test_data"]
    assert infilled.shape == original.shape == test["roll"].shape and infilled.dtype == bool
    np.testing.assert_array_equal(infilled[:, :16], original[:, :16])
    np.testing.assert_array_equal(infilled[:, 48:], original[:, 48:])
    assert results["infilling"]["model"]["density"] == pytest.approx(infilled.mean())
    assert (tmp_path / "figures" / "continuation.png").exists()
    assert len(list((tmp_path / "midi" / "variation").glob("*.mid"))) == 4  # 2 per system

    losses = pianoroll_eval.losses_to_baseline(results, uncertainty=uncertainty)
    oa_losses = [loss for loss in losses if "/" in loss]
    assert all("of resamples" in loss and "real test data" in loss for loss in oa_losses), oa_losses


def test_the_l1_loss_is_the_mean_absolute_error_of_the_probabilities_and_has_a_gradient(chorale_segments):
    rolls, _, density = chorale_segments
    x0 = jax.numpy.asarray(rolls[:4], jax.numpy.float32)
    task = BinomialTask(model=UNet(TINY), density=density, loss_type="l1")
    params = task.init(jax.random.PRNGKey(0), {"roll": x0})
    rng = jax.random.PRNGKey(5)
    loss, scores = task.loss(params, {"roll": x0}, rng, jax.numpy.array(0))
    step_rng, noise_rng = jax.random.split(rng)  # the draws of `BinomialTask._metrics`
    t = jax.random.randint(step_rng, (4,), 1, task.process.num_steps + 1)
    x_t = binomial.q_sample(task.process, noise_rng, x0, t)
    probabilities = task.denoiser(params)(x_t, t)
    assert float(loss) == pytest.approx(float(np.abs(np.asarray(probabilities) - rolls[:4]).mean()), rel=1e-5)
    assert float(loss) != pytest.approx(float(scores["bce"]), rel=1e-2)  # the L1, not the BCE, is optimized
    gradients = jax.grad(lambda p: task.loss(p, {"roll": x0}, rng, jax.numpy.array(0))[0])(params)
    assert max(float(np.abs(g).max()) for g in jax.tree_util.tree_leaves(gradients)) > 0
