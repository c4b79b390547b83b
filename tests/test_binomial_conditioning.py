"""The conditioned model (random conditioning masks, the U-Net's extra input channels, its sampler path) and
RePaint-style resampling, against closed forms, an exact denoiser of a toy problem, and real chorales."""
import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.data import chorales
from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments
from smdiff.diffusion import binomial, conditioning
from smdiff.generators.pianoroll import PianorollGenerator, melody_mask
from smdiff.models.unet import UNet, UNetConfig
from smdiff.tasks.binomial import BinomialTask

TINY = UNetConfig(base_width=8, width_multipliers=(1, 2, 2), blocks_per_level=1, attention_heads=2,
                  attention_head_width=8, num_steps=20)


@pytest.fixture(scope="module")
def chorale_rolls():
    """Real 8-quarter segments [n, 32, P] of two chorales."""
    config = SegmentConfig(segment_quarters=8, stride_quarters=8)
    pieces = [chorales.parse_chorale(name, config.steps_per_quarter) for name in ("bach/bwv269", "bach/bwv347")]
    pitch_range = choose_pitch_range(pieces, config)
    examples = [example for piece in pieces
                for _, example in piece_segments(piece, "test", pitch_range, config, collections.Counter())]
    return np.stack([example["roll"] for example in examples]).astype(np.float32)


def test_voice_masks_are_the_melody_mask_of_the_outer_voices(chorale_rolls):
    top = np.asarray(conditioning.top_voice_mask(jnp.asarray(chorale_rolls)))
    np.testing.assert_array_equal(top, melody_mask(chorale_rolls))  # the roll's own top voice as the melody
    bottom = np.asarray(conditioning.bottom_voice_mask(jnp.asarray(chorale_rolls)))
    for roll, mask in zip(chorale_rolls, bottom):
        for step in range(roll.shape[0]):
            sounding = np.flatnonzero(roll[step])
            expected = np.arange(roll.shape[1]) <= sounding.min() if len(sounding) else np.zeros(roll.shape[1], bool)
            np.testing.assert_array_equal(mask[step], expected)


def test_random_masks_draw_every_kind_per_example(chorale_rolls):
    rolls = jnp.asarray(np.concatenate([chorale_rolls] * 8))  # enough examples for every kind to occur
    masks = np.asarray(conditioning.random_masks(jax.random.PRNGKey(0), rolls))
    top, bottom = (np.asarray(f(rolls)) for f in (conditioning.top_voice_mask, conditioning.bottom_voice_mask))
    kinds = collections.Counter()
    for mask, top_mask, bottom_mask in zip(masks, top, bottom):
        steps_given = mask.all(axis=1)
        if not mask.any():
            kinds["nothing"] += 1
        elif (mask == top_mask).all():
            kinds["top_voice"] += 1
        elif (mask == bottom_mask).all():
            kinds["bottom_voice"] += 1
        else:  # whole steps: a prefix, or everything but one span
            assert (mask == steps_given[:, None]).all()
            changes = np.flatnonzero(np.diff(steps_given.astype(int)))
            is_prefix = steps_given[0] and len(changes) == 1
            kinds["prefix" if is_prefix else "time_span"] += 1
            if not is_prefix:  # given outside one generated span: at most two changes, given at both ends if two
                assert len(changes) <= 2 and (len(changes) < 2 or steps_given[0] and steps_given[-1])
    assert set(kinds) == set(conditioning.MASK_KINDS) and min(kinds.values()) >= 0.1 * len(masks), kinds


def test_conditioned_unet_reads_the_known_cells_and_refuses_to_run_without(chorale_rolls):
    rolls = jnp.asarray(chorale_rolls[:2])
    t = jnp.array([5, 5])
    task = BinomialTask(UNet(dataclasses.replace(TINY, conditioned=True)), density=0.07, loss_type="bce")
    params = task.init(jax.random.PRNGKey(0), {"roll": rolls})
    mask = jnp.asarray(melody_mask(chorale_rolls[:2]))
    noisy = binomial.q_sample(task.process, jax.random.PRNGKey(1), rolls, t)
    with_melody = task.denoiser(params, rolls, mask)(noisy, t)
    other_melody = task.denoiser(params, rolls[::-1], jnp.asarray(melody_mask(chorale_rolls[1::-1])))(noisy, t)
    nothing = task.denoiser(params)(noisy, t)
    assert float(jnp.abs(with_melody - other_melody).max()) > 1e-4  # the prediction depends on the given cells
    assert float(jnp.abs(with_melody - nothing).max()) > 1e-4
    with pytest.raises(ValueError, match="conditioned"):
        task.model.apply({"params": params}, noisy, t)
    plain = BinomialTask(UNet(TINY), density=0.07)
    plain_params = plain.init(jax.random.PRNGKey(0), {"roll": rolls})
    with pytest.raises(ValueError, match="clamp"):
        plain.denoiser(plain_params, rolls, mask)(noisy, t)
    with pytest.raises(ValueError, match="conditioned U-Net"):
        PianorollGenerator(plain, plain_params, rolls.shape[1:], conditioning="model")


def test_conditioned_loss_scores_only_the_generated_cells(chorale_rolls):
    rolls = jnp.asarray(chorale_rolls[:4])
    task = BinomialTask(UNet(dataclasses.replace(TINY, conditioned=True)), density=0.07, loss_type="l1")
    params = task.init(jax.random.PRNGKey(0), {"roll": rolls})
    rng = jax.random.PRNGKey(3)
    loss, metrics = task.loss(params, {"roll": rolls}, rng, jnp.array(0))
    # The same draws by hand: step, noise and mask as `_metrics` takes them.
    step_rng, noise_rng = jax.random.split(rng)
    t = jax.random.randint(step_rng, (4,), 1, task.process.num_steps + 1)
    x_t = binomial.q_sample(task.process, noise_rng, rolls, t)
    mask = conditioning.random_masks(jax.random.fold_in(rng, 1), rolls)
    prediction = task.denoiser(params, rolls, mask)(x_t, t)
    generated = ~mask
    expected = jnp.abs(prediction - rolls)[generated].mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss) == float(metrics["l1"])
    assert float(jnp.abs(prediction - rolls).mean()) != pytest.approx(float(expected), rel=1e-3)  # masks matter


def test_renoise_reaches_the_forward_marginal():
    process = binomial.BinomialProcess(density=0.1, num_steps=100)
    x0 = jnp.ones((400_000,))
    s, t = jnp.full((1,), 30), jnp.full((1,), 70)
    x_s = binomial.q_sample(process, jax.random.PRNGKey(0), x0[None], s)
    x_t = binomial.renoise(process, jax.random.PRNGKey(1), x_s, s, t)
    expected = float(binomial.marginal_probability(process, jnp.ones(()), jnp.array(70)))
    assert abs(float(x_t.mean()) - expected) < 5 * np.sqrt(expected * (1 - expected) / x0.size)


# A toy key problem with an exact denoiser: a row of 16 cells is pattern A (first 8 on) or B (last 8 on), equally
# likely; a quarter of the cells, the first 4, are given (on: A). The clamped cells are mostly noise at high t while
# the 12 generated cells settle on a pattern, so clamping alone often ends in B (27% here); RePaint's resampling
# (12%) and a denoiser that reads the given cells (0%) do better.
PATTERNS = jnp.array([[1.0] * 8 + [0.0] * 8, [0.0] * 8 + [1.0] * 8])
TOY = binomial.BinomialProcess(density=0.5, num_steps=100)


def _toy_denoiser(reads_given_cells: bool):
    def denoise(x_t, t):  # x_t [B, 1, 16] -> P(x0 = 1 | x_t) [B, 1, 16]
        p_on = binomial.marginal_probability(TOY, PATTERNS[None], t)  # [B, 2, 16]: q(x_t = 1 | pattern)
        log_likelihood = jnp.sum(jnp.where(x_t > 0.5, jnp.log(p_on), jnp.log1p(-p_on)), axis=-1)  # [B, 2]
        if reads_given_cells:  # the clean given cells rule out B
            log_likelihood = log_likelihood.at[:, 1].set(-jnp.inf)
        posterior = jax.nn.softmax(log_likelihood, axis=-1)
        return (posterior @ PATTERNS)[:, None, :]
    return denoise


def _wrong_pattern_rate(denoise, num_steps, num_resamplings=1):
    known, mask = PATTERNS[0][None, None], (jnp.arange(16) < 4)[None, None]
    out = binomial.sample(TOY, denoise, jax.random.PRNGKey(0), (2000, 1, 16), "posterior", known=known, mask=mask,
                          num_sampling_steps=num_steps, num_resamplings=num_resamplings)
    return float(jnp.mean(jnp.abs(out[:, 0] - PATTERNS[0]).sum(-1) > 0))


def test_resampling_and_a_conditioned_denoiser_beat_clamping_on_the_same_compute():
    clamping = _wrong_pattern_rate(_toy_denoiser(False), 40)
    repaint = _wrong_pattern_rate(_toy_denoiser(False), 8, num_resamplings=5)
    conditioned = _wrong_pattern_rate(_toy_denoiser(True), 40)
    assert clamping > 0.15, clamping  # the failure the conditioning method causes
    assert repaint < 0.75 * clamping, (repaint, clamping)
    assert conditioned < 0.01, conditioned
    with pytest.raises(ValueError, match="num_resamplings"):
        binomial.sample(TOY, _toy_denoiser(False), jax.random.PRNGKey(0), (1, 1, 16), num_resamplings=2)
