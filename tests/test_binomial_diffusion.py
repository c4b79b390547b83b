"""The binomial process against closed forms: marginals, the exact posterior by enumeration, clamping."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.diffusion import binomial

PROCESS = binomial.BinomialProcess(density=0.07, num_steps=100)
SHORT = binomial.BinomialProcess(density=0.07, num_steps=20)  # for the samplers: fewer steps, same code


def _bernoulli(p, value):
    return p if value == 1 else 1.0 - p


def _one_step(process, x_prev, t):
    """q(x_t = 1 | x_{t-1}): keep with alpha_t / alpha_{t-1}, else redraw from Bernoulli(r)."""
    keep = (1.0 - t / process.num_steps) / (1.0 - (t - 1) / process.num_steps)
    return keep * x_prev + (1.0 - keep) * process.density


def test_forward_marginal_matches_closed_form():
    steps = np.array([0, 1, 30, 70, 100])
    x0 = jnp.tile(jnp.array([0.0, 1.0]), (len(steps), 4000, 32))  # [t, 4000, 64]: half the cells on
    x_t = np.asarray(binomial.q_sample(PROCESS, jax.random.PRNGKey(0), x0, jnp.asarray(steps)))
    assert set(np.unique(x_t)) <= {0.0, 1.0}
    for i, t in enumerate(steps):
        for value in (0, 1):
            expected = value * (1 - t / 100) + 0.07 * t / 100
            cells = x_t[i, :, value::2]
            sigma = np.sqrt(expected * (1 - expected) / cells.size)
            assert abs(cells.mean() - expected) <= 5 * sigma + 1e-7, (t, value)


def test_step_by_step_chain_reaches_the_closed_form_marginal():
    """Running the one-step kernel t times gives the marginal the closed form (and the sampler) assume."""
    x = jnp.ones((200_000,))
    rng = jax.random.PRNGKey(0)
    for t in range(1, 61):
        rng, step_rng = jax.random.split(rng)
        x = jax.random.bernoulli(step_rng, _one_step(PROCESS, x, t)).astype(jnp.float32)
        if t in (1, 20, 60):
            expected = float(binomial.marginal_probability(PROCESS, jnp.ones(()), jnp.array(t)))
            sigma = np.sqrt(expected * (1 - expected) / x.size)
            assert abs(float(x.mean()) - expected) <= 5 * sigma


def _chained_likelihood(process, s, t):
    """q(x_t = b | x_s = a) as a 2x2 matrix [a, b], by multiplying the one-step kernels s+1 .. t."""
    matrix = np.eye(2)
    for step in range(s + 1, t + 1):
        one = [_one_step(process, a, step) for a in (0, 1)]
        matrix = matrix @ np.array([[1 - one[0], one[0]], [1 - one[1], one[1]]])
    return matrix


@pytest.mark.parametrize("t,s", [(1, 0), (2, 1), (37, 36), (100, 99), (60, 45), (100, 0)])
@pytest.mark.parametrize("prior_one", [0.0, 0.3, 1.0])
def test_posterior_matches_bayes_by_enumeration(t, s, prior_one):
    """With x0 ~ Bernoulli(prior_one) and the denoiser giving the true P(x0 = 1 | x_t), the posterior
    sampler's P(x_s = 1 | x_t) must equal the one computed from the enumerated joint of (x0, x_s, x_t)."""
    r, steps = PROCESS.density, PROCESS.num_steps
    marginal = lambda x0, step: x0 * (1 - step / steps) + r * step / steps  # noqa: E731
    likelihood = _chained_likelihood(PROCESS, s, t)
    joint = {}
    for x0, x_s, x_t in itertools.product((0, 1), repeat=3):
        joint[x0, x_s, x_t] = (
            _bernoulli(prior_one, x0) * _bernoulli(marginal(x0, s), x_s) * likelihood[x_s, x_t]
        )
    for x_t in (0, 1):
        evidence = sum(joint[a, b, x_t] for a in (0, 1) for b in (0, 1))
        if evidence < 1e-12:
            continue  # e.g. x_t = 0 is impossible when x0 = 1 surely and t = 1
        x0_given_xt = sum(joint[1, b, x_t] for b in (0, 1)) / evidence
        expected = sum(joint[a, 1, x_t] for a in (0, 1)) / evidence
        got = binomial.posterior_probability(
            PROCESS, jnp.array([float(x_t)]), jnp.array([x0_given_xt]), jnp.array([t]), jnp.array([s])
        )
        np.testing.assert_allclose(float(got[0]), expected, rtol=1e-5, atol=1e-7)


def _oracle(x0):
    return lambda x_t, t: jnp.broadcast_to(x0, x_t.shape)


@pytest.mark.parametrize("sampler", binomial.SAMPLERS)
@pytest.mark.parametrize("num_sampling_steps", [None, 7])
def test_a_perfect_denoiser_recovers_the_roll(sampler, num_sampling_steps):
    x0 = (jnp.arange(16 * 8).reshape(1, 16, 8) % 5 == 0).astype(jnp.float32)  # [1, time 16, pitch 8]
    out = binomial.sample(SHORT, _oracle(x0), jax.random.PRNGKey(1), (3, 16, 8), sampler,
                          num_sampling_steps=num_sampling_steps)
    np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(np.asarray(x0), (3, 16, 8)))


@pytest.mark.parametrize("sampler", binomial.SAMPLERS)
def test_clamped_cells_equal_the_condition_exactly(sampler):
    shape = (4, 16, 8)
    known = (jnp.arange(16 * 8).reshape(16, 8) % 3 == 0).astype(jnp.float32)
    mask = jnp.zeros((16, 8), bool).at[:6].set(True).at[:, 7].set(True)  # a prefix and the top pitch
    # The denoiser believes every cell is off, so only clamping can bring the condition back.
    everything_off = lambda x_t, t: jnp.zeros_like(x_t)  # noqa: E731
    out, trajectory = binomial.sample(SHORT, everything_off, jax.random.PRNGKey(2), shape, sampler,
                                      known=known, mask=mask, return_trajectory=True)
    out = np.asarray(out)
    np.testing.assert_array_equal(out[:, np.asarray(mask)], np.broadcast_to(np.asarray(known)[np.asarray(mask)], (4, int(mask.sum()))))
    assert not out[:, ~np.asarray(mask)].any()
    assert trajectory.shape == (20, *shape)
    np.testing.assert_array_equal(np.asarray(trajectory[-1]), out > 0.5)


def test_variation_strength_controls_how_much_changes():
    x0 = (jnp.arange(8 * 32 * 16).reshape(8, 32, 16) % 7 == 0).astype(jnp.float32)
    identity = lambda x_t, t: x_t  # noqa: E731  (keeps whatever noise it is given)
    changed = []
    for strength in (0.1, 1.0):
        out = binomial.variation(SHORT, identity, jax.random.PRNGKey(3), x0, strength)
        changed.append(float(jnp.mean(out != x0)))
    assert changed[0] < 0.05 < 0.1 < changed[1]
    with pytest.raises(ValueError, match="strength"):
        binomial.variation(SHORT, identity, jax.random.PRNGKey(3), x0, 0.0)


def test_paper_variation_state_before_the_last_step_is_the_forward_marginal():
    """With a denoiser that knows x0 until its last call, where it returns its input (so the output is the
    state x_1), the paper sampler's x_1 must be q(x_1 | x0): a cell differs from x0 with probability
    beta_1 * P(noise != x0). Reverting to the partially noised start instead halves that at strength 0.5."""
    x0 = (jnp.arange(64 * 32 * 16).reshape(64, 32, 16) % 5 == 0).astype(jnp.float32)
    oracle_then_identity = lambda x_t, t: jnp.where(_per_cell(t == 1, x_t), x_t, x0)  # noqa: E731
    out = binomial.variation(SHORT, oracle_then_identity, jax.random.PRNGKey(4), x0, 0.5, sampler="paper")
    x0_on = float(x0.mean())
    expected = (1 / 20) * (x0_on * (1 - 0.07) + (1 - x0_on) * 0.07)  # beta_1 * P(noise != x0)
    observed = float(jnp.mean(out != x0))
    sigma = np.sqrt(expected * (1 - expected) / x0.size)
    assert abs(observed - expected) <= 5 * sigma, (observed, expected)


def _per_cell(flags, like):
    return flags.reshape(flags.shape + (1,) * (like.ndim - 1))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="density"):
        binomial.BinomialProcess(density=0.0)
    with pytest.raises(ValueError, match="sampler"):
        binomial.sample(PROCESS, _oracle(0.0), jax.random.PRNGKey(0), (1, 8, 8), "ddim")
    with pytest.raises(ValueError, match="both"):
        binomial.sample(PROCESS, _oracle(0.0), jax.random.PRNGKey(0), (1, 8, 8), known=jnp.zeros((8, 8)))


@pytest.mark.parametrize("sampler", binomial.SAMPLERS)
def test_every_intermediate_clamp_is_the_forward_marginal_at_that_level(sampler):
    # The known cells of every reverse state x_s must be distributed as q(x_s | known), not only come out right at
    # s = 0: on-cells at P = alpha_s + r (1 - alpha_s), off-cells at r (1 - alpha_s), whatever the denoiser says.
    shape = (2000, 4, 8)
    known = jnp.zeros((4, 8)).at[:2].set(1.0)
    mask = jnp.ones((4, 8), bool).at[:, 0].set(False)
    everything_off = lambda x_t, t: jnp.zeros_like(x_t)  # noqa: E731
    _, trajectory = binomial.sample(SHORT, everything_off, jax.random.PRNGKey(4), shape, sampler, known=known,
                                    mask=mask, num_sampling_steps=5, return_trajectory=True)
    levels = [16, 12, 8, 4, 0]  # the states after each of the 5 reverse steps from t = 20
    trajectory = np.asarray(trajectory, np.float32)
    for state, s in zip(trajectory, levels):
        for value, cells in ((1.0, state[:, :2, 1:]), (0.0, state[:, 2:, 1:])):
            expected = float(binomial.marginal_probability(SHORT, jnp.asarray(value), jnp.asarray(s)))
            sigma = np.sqrt(max(expected * (1 - expected), 1e-12) / cells.size)
            assert abs(cells.mean() - expected) <= 5 * sigma + 1e-9, (s, value, cells.mean(), expected)


def test_paper_sampler_reverts_to_the_noise_with_probability_beta_s():
    # Where the thresholded prediction differs from x_T the paper's step keeps x_T with probability beta_s, and
    # where they agree nothing changes.
    n = 200_000
    x_noise = jnp.concatenate([jnp.ones(n // 2), jnp.zeros(n // 2)])[None]
    prediction = jnp.zeros((1, n)).at[:, : n // 4].set(1.0).at[:, n // 2: 3 * n // 4].set(1.0)  # half differ
    for s in (10, 50, 90):
        out = np.asarray(binomial.paper_step(PROCESS, jax.random.PRNGKey(s), x_noise, prediction, jnp.array([s])))[0]
        differs = np.asarray(prediction[0] != x_noise[0])
        reverted = out[differs] == np.asarray(x_noise[0])[differs]
        beta = s / PROCESS.num_steps
        assert abs(reverted.mean() - beta) <= 5 * np.sqrt(beta * (1 - beta) / differs.sum()), (s, reverted.mean())
        np.testing.assert_array_equal(out[~differs], np.asarray(prediction[0])[~differs])
