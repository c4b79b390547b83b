"""A short real training run of the binomial-diffusion U-Net on Bach chorales, then its generator."""
import collections

import jax
import numpy as np
import pytest
import tensorflow as tf

from smdiff import train as train_module
from smdiff.data import chorales
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
