"""Closed-form checks of smdiff.diffusion.gaussian.

The samplers are checked with the exact epsilon-predictor for Gaussian data x0 ~ N(MU, SD^2 I), so no
training is needed: E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) MU) / (a SD^2 + 1 - a), a = alpha_bar.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.diffusion import gaussian

MU, SD = 0.3, 0.2
SCHEDULE = gaussian.linear_schedule()  # the paper's: N = 1000, 1e-6 .. 0.01
# The same schedule in float64, as the references for the float32 one.
BETAS64 = np.concatenate([[0.0], np.linspace(1e-6, 0.01, 1000)])
ALPHA_BARS64 = np.cumprod(1 - BETAS64)
NOISE64 = 1 - ALPHA_BARS64  # float64 keeps 1 - alpha_bar_1 = 1e-6 to 10 digits


def exact_eps(x_t, noise_level):
    a = gaussian._per_example(noise_level**2, x_t)
    return jnp.sqrt(1.0 - a) * (x_t - jnp.sqrt(a) * MU) / (a * SD**2 + 1.0 - a)


def test_linear_schedule_matches_paper():
    betas, alpha_bars = np.asarray(SCHEDULE.betas), np.asarray(SCHEDULE.alpha_bars)
    assert SCHEDULE.num_steps == 1000
    assert betas[0] == 0 and alpha_bars[0] == 1
    np.testing.assert_allclose(betas[[1, 1000]], [1e-6, 0.01], rtol=1e-6)
    np.testing.assert_allclose(alpha_bars, ALPHA_BARS64, rtol=1e-6)
    np.testing.assert_allclose(SCHEDULE.one_minus_alpha_bars, NOISE64, rtol=1e-5)


@pytest.mark.parametrize("t", [1, 50, 400, 1000])
def test_q_sample_moments(t):
    x0 = jnp.linspace(-1, 1, 16)[None]  # [1, 16]
    eps = jax.random.normal(jax.random.PRNGKey(t), (50_000, 16))
    x_t = gaussian.q_sample(jnp.broadcast_to(x0, eps.shape), jnp.full((50_000,), SCHEDULE.alpha_bars[t]), eps)
    mean, variance = gaussian.q_mean_variance(SCHEDULE, x0, jnp.array([t]))
    a = ALPHA_BARS64[t]
    np.testing.assert_allclose(mean[0], np.sqrt(a) * np.asarray(x0[0]), rtol=1e-6)
    np.testing.assert_allclose(variance[0, 0], NOISE64[t], rtol=1e-5)
    # 50k draws: standard error of the mean ~ 0.0045 sd, of the variance ~ 0.6%.
    np.testing.assert_allclose(x_t.mean(0), mean[0], atol=0.02 * np.sqrt(1 - a) + 1e-4)
    np.testing.assert_allclose(x_t.var(0), np.full(16, NOISE64[t]), rtol=0.03, atol=1e-8)


@pytest.mark.parametrize("t", [2, 10, 500, 1000])
def test_posterior_matches_bayes_rule(t):
    """q(x_{t-1} | x_t, x0) by Gaussian conditioning on x_{t-1} ~ q(.|x0) and x_t | x_{t-1}."""
    rng = np.random.default_rng(t)
    x0, x_t = rng.uniform(-1, 1, (3, 5)), rng.normal(size=(3, 5))
    a_prev, noise_prev, beta = ALPHA_BARS64[t - 1], NOISE64[t - 1], BETAS64[t]
    precision = 1 / noise_prev + (1 - beta) / beta
    expected_var = 1 / precision
    expected_mean = expected_var * (np.sqrt(a_prev) * x0 / noise_prev + np.sqrt(1 - beta) * x_t / beta)
    mean, var = gaussian.posterior_mean_variance(SCHEDULE, jnp.asarray(x0), jnp.asarray(x_t), jnp.full((3,), t))
    np.testing.assert_allclose(var[:, 0], expected_var, rtol=1e-4)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-4, atol=1e-6)


def test_continuous_noise_level_range():
    levels = np.asarray(gaussian.sample_noise_level(SCHEDULE, jax.random.PRNGKey(0), 100_000))
    alpha_bars = np.asarray(SCHEDULE.alpha_bars)
    assert levels.min() >= alpha_bars[-1] and levels.max() <= 1.0
    # Which interval (alpha_bar_t, alpha_bar_{t-1}] each level fell in: t must be uniform on 1..N.
    # A level equal to 1 (float32 rounding within the first step's 1e-6 range) belongs to step 1.
    steps = np.maximum(np.searchsorted(-alpha_bars, -levels), 1)  # alpha_bars decrease
    counts = np.bincount((steps - 1) // 100, minlength=10)  # ten bins of 100 steps
    np.testing.assert_allclose(counts / len(levels), 0.1, atol=0.006)
    # Within a step the level is uniform: the first step spans (1 - 1e-6, 1], every level lands in it.
    first = levels[steps == 1]
    assert first.size > 0 and np.all(first >= alpha_bars[1])


def test_training_loss_is_small_for_the_exact_denoiser():
    x0 = MU + SD * jax.random.normal(jax.random.PRNGKey(1), (4096, 8))
    exact = gaussian.training_loss(exact_eps, SCHEDULE, x0, jax.random.PRNGKey(2))
    blind = gaussian.training_loss(lambda x, level: jnp.zeros_like(x), SCHEDULE, x0, jax.random.PRNGKey(2))
    assert exact.shape == (4096,)
    # Predicting zero costs E[eps^2] = 1; the Bayes-optimal predictor costs E[a SD^2 / (a SD^2 + 1 - a)].
    assert abs(float(blind.mean()) - 1.0) < 0.02
    assert float(exact.mean()) < 0.25


def _moments(x):
    return float(x.mean()), float(x.std())


@functools.partial(jax.jit, static_argnames=("sampler", "num_steps", "eta"))
def _sample(rng, sampler, num_steps=1000, eta=1.0):
    shape = (2048, 8)
    if sampler == "ddpm":
        return gaussian.ddpm_sample(exact_eps, SCHEDULE, rng, shape, clip_x0=False).x0
    return gaussian.ddim_sample(exact_eps, SCHEDULE, rng, shape, num_steps=num_steps, eta=eta, clip_x0=False).x0


def test_ddim_eta1_all_steps_matches_ancestral_in_distribution():
    ddpm = _sample(jax.random.PRNGKey(3), "ddpm")
    ddim = _sample(jax.random.PRNGKey(4), "ddim")
    for samples in (ddpm, ddim):
        mean, sd = _moments(samples)
        assert abs(mean - MU) < 0.01 and abs(sd - SD) < 0.01, (mean, sd)
    # Same noise draws: the two update rules are algebraically the same map.
    np.testing.assert_allclose(_sample(jax.random.PRNGKey(3), "ddim"), ddpm, atol=2e-4)


def test_ddim_few_deterministic_steps_reach_the_data_distribution():
    samples = _sample(jax.random.PRNGKey(5), "ddim", num_steps=50, eta=0.0)
    mean, sd = _moments(samples)
    assert abs(mean - MU) < 0.01 and abs(sd - SD) < 0.02, (mean, sd)


def test_infilling_returns_known_entries_exactly():
    known = jax.random.uniform(jax.random.PRNGKey(6), (4, 32, 3), minval=-1, maxval=1)
    mask = (jnp.arange(32) < 8) | (jnp.arange(32) >= 24)  # the paper's task: keep 0-7 and 24-31
    mask = mask[None, :, None]
    runs = {
        "ddpm": gaussian.ddpm_sample(
            exact_eps, SCHEDULE, jax.random.PRNGKey(7), known.shape, known=known, known_mask=mask),
        "ddim": gaussian.ddim_sample(
            exact_eps, SCHEDULE, jax.random.PRNGKey(7), known.shape, num_steps=20, eta=0.5, known=known, known_mask=mask
        ),
        "variation": gaussian.variation(exact_eps, SCHEDULE, jax.random.PRNGKey(7), known, 0.5, known_mask=mask),
    }
    for name, sample in runs.items():
        full_mask = np.broadcast_to(np.asarray(mask), known.shape)
        np.testing.assert_array_equal(np.asarray(sample.x0)[full_mask], np.asarray(known)[full_mask], err_msg=name)
        assert not np.allclose(sample.x0[:, 8:24], known[:, 8:24]), name


def test_trajectory_records_x0_estimates_and_ends_at_the_sample():
    sample = gaussian.ddpm_sample(exact_eps, SCHEDULE, jax.random.PRNGKey(8), (16, 4), trajectory_every=100)
    assert sample.trajectory.shape == (10, 16, 4)
    np.testing.assert_array_equal(sample.trajectory_steps, np.arange(901, 0, -100))
    # At t = 1 the posterior mean is x0_hat itself and no noise is added.
    np.testing.assert_allclose(sample.trajectory[-1], sample.x0, atol=1e-5)
    with pytest.raises(ValueError, match="must divide"):
        gaussian.ddpm_sample(exact_eps, SCHEDULE, jax.random.PRNGKey(8), (2, 4), trajectory_every=300)


@pytest.mark.parametrize("strength", [0.02, 0.2, 1.0])
def test_variation_moves_samples_as_far_as_the_exact_posterior(strength):
    """With the exact denoiser, a variation of x0 is a draw from p(x0 | x_t): it and x0 are independent
    given x_t, each with the posterior variance v, so E|out - x0| = 2 sqrt(v / pi)."""
    x0 = MU + SD * jax.random.normal(jax.random.PRNGKey(9), (4096, 8))
    out = gaussian.variation(exact_eps, SCHEDULE, jax.random.PRNGKey(10), x0, strength, clip_x0=False).x0
    t = round(strength * 1000)
    a, noise = ALPHA_BARS64[t], NOISE64[t]
    posterior_variance = SD**2 * noise / (a * SD**2 + noise)
    np.testing.assert_allclose(float(jnp.mean(jnp.abs(out - x0))), 2 * np.sqrt(posterior_variance / np.pi), rtol=0.05)


def test_variation_rejects_a_strength_that_reaches_no_step():
    with pytest.raises(ValueError, match="strength"):
        gaussian.variation(exact_eps, SCHEDULE, jax.random.PRNGKey(10), jnp.zeros((2, 3)), 0.0001)


# ---- Infilling: tests that see whether the gap is conditioned on the context ------------------------
# Correlated Gaussian data over D positions: x0 ~ N(CORR_MEAN, CORR_COV) with an AR(1) covariance, so the
# exact eps is that of a multivariate Gaussian, E[eps | x_t] = sqrt(1 - a) C^-1 (x_t - sqrt(a) m) with
# C = a CORR_COV + (1 - a) I.
D = 8
CORR_MEAN, CORR_SD, CORR_RHO = 0.1, 0.5, 0.9
CORR_COV = CORR_SD**2 * CORR_RHO ** np.abs(np.arange(D)[:, None] - np.arange(D)[None, :])
KNOWN_POSITIONS = np.isin(np.arange(D), [0, 1, 6, 7])  # a gap of 4 between two known pairs
_EIGVALS, _EIGVECS = np.linalg.eigh(CORR_COV)


def correlated_exact_eps(x_t, noise_level):
    """x_t [B, D], noise_level [B] -> the Bayes-optimal eps [B, D] for x0 ~ N(CORR_MEAN, CORR_COV)."""
    a = (noise_level**2)[:, None]
    centred = (x_t - jnp.sqrt(a) * CORR_MEAN) @ jnp.asarray(_EIGVECS, jnp.float32)  # eigenbasis of CORR_COV
    return jnp.sqrt(1.0 - a) * (centred / (a * jnp.asarray(_EIGVALS, jnp.float32) + 1.0 - a)) @ jnp.asarray(
        _EIGVECS.T, jnp.float32)


def exact_x0_hat_map(t: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact x0 estimate at step t as an affine map, x0_hat = L x_t + c: (L [D, D], c [D]), in float64."""
    a, noise = ALPHA_BARS64[t], NOISE64[t]
    c_inv = np.linalg.inv(a * CORR_COV + noise * np.eye(D))
    # x0_hat = (x_t - sqrt(noise) eps) / sqrt(a) with eps = sqrt(noise) C^-1 (x_t - sqrt(a) m)
    return (np.eye(D) - noise * c_inv) / np.sqrt(a), noise * c_inv @ np.full(D, CORR_MEAN)


def algorithm1_gap_moments(known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [G] and covariance [G, G] of the gap after paper Algorithm 1 (ancestral DDPM from N(0, I); after
    every step the known positions replaced by a fresh q(x_{t-1} | known)) with the exact eps, in float64.

    Every step is linear-Gaussian in x_t, so the moments of the whole state propagate in closed form.
    """
    mean, cov = np.zeros(D), np.eye(D)
    for t in range(1000, 0, -1):
        noise, beta = NOISE64[t], BETAS64[t]
        lin, offset = exact_x0_hat_map(t)
        x0_coef = np.sqrt(ALPHA_BARS64[t - 1]) * beta / noise
        x_t_coef = np.sqrt(1 - beta) * NOISE64[t - 1] / noise
        step = x0_coef * lin + x_t_coef * np.eye(D)
        mean = step @ mean + x0_coef * offset
        cov = step @ cov @ step.T + (beta * NOISE64[t - 1] / noise if t > 1 else 0.0) * np.eye(D)
        # The known positions: a fresh draw of q(x_{t-1} | known), independent of the rest.
        mean = np.where(KNOWN_POSITIONS, np.sqrt(ALPHA_BARS64[t - 1]) * known, mean)
        cov[KNOWN_POSITIONS, :] = 0.0
        cov[:, KNOWN_POSITIONS] = 0.0
        cov[KNOWN_POSITIONS, KNOWN_POSITIONS] = NOISE64[t - 1]
    gap = ~KNOWN_POSITIONS
    return mean[gap], cov[np.ix_(gap, gap)]


def test_infilled_gap_of_correlated_gaussian_data_has_the_closed_form_moments():
    """The gap must depend on the context through the data's correlation. The reference is the exact law of
    Algorithm 1's output (not the exact conditional p(gap | known): replacing the known part by fresh noise
    at each step does not sample it; for this data the conditional's gap variances are 0.04-0.06, the
    prior's 0.25, and Algorithm 1's lie between, at 0.07-0.10)."""
    known = CORR_MEAN + CORR_SD * np.array([1.5, 1.5, 0, 0, 0, 0, -1.5, -1.5])  # the gap runs from high to low
    expected_mean, expected_cov = algorithm1_gap_moments(known)
    batch = 8192
    sample = jax.jit(lambda rng: gaussian.ddpm_sample(
        correlated_exact_eps, SCHEDULE, rng, (batch, D), known=jnp.broadcast_to(jnp.asarray(known, jnp.float32),
                                                                                  (batch, D)),
        known_mask=jnp.asarray(KNOWN_POSITIONS)[None], clip_x0=False).x0)(jax.random.PRNGKey(11))
    gap = np.asarray(sample, np.float64)[:, ~KNOWN_POSITIONS]  # [batch, 4]
    standard_error = np.sqrt(np.diag(expected_cov) / batch)
    np.testing.assert_allclose(gap.mean(0), expected_mean, atol=4 * standard_error.max())
    np.testing.assert_allclose(np.cov(gap.T), expected_cov, atol=0.008)
    # Power: the context moves the gap's mean far from the prior's (by more than 10 standard errors) ...
    assert np.all(np.abs(expected_mean - CORR_MEAN)[[0, -1]] > 10 * standard_error.max())
    # ... towards the exact conditional's, and shrinks its variance below the prior's.
    gap_positions, known_positions = ~KNOWN_POSITIONS, KNOWN_POSITIONS
    conditional_mean = CORR_MEAN + CORR_COV[np.ix_(gap_positions, known_positions)] @ np.linalg.solve(
        CORR_COV[np.ix_(known_positions, known_positions)], known[known_positions] - CORR_MEAN)
    assert np.all(np.sign(expected_mean - CORR_MEAN)[[0, -1]] == np.sign(conditional_mean - CORR_MEAN)[[0, -1]])
    assert np.all(np.diag(expected_cov) < 0.5 * CORR_SD**2)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_known_part_enters_each_step_at_that_steps_noise_level(sampler):
    """With eps = 0 the x0 estimate at step t is x_t / sqrt(alpha_bar_t), so the recorded trajectory shows
    the known entries the denoiser saw: known + sqrt((1 - alpha_bar_t) / alpha_bar_t) * N(0, 1), i.e. the
    known sample diffused to the step t being denoised (paper Algorithm 1; the released code's step-t
    diffusion would show step t+1's level one step late, 11 times the variance at t = 1)."""
    batch, width = 1024, 16
    known = jnp.broadcast_to(jnp.linspace(-0.8, 0.8, width), (batch, width))
    mask = (jnp.arange(width) < 8)[None]  # 8 known entries per row: 8192 draws per step
    zero_eps = lambda x, level: jnp.zeros_like(x)  # noqa: E731
    kwargs = dict(known=known, known_mask=mask, clip_x0=False, trajectory_every=1)
    if sampler == "ddpm":
        result = gaussian.ddpm_sample(zero_eps, SCHEDULE, jax.random.PRNGKey(12), known.shape, **kwargs)
    else:
        result = gaussian.ddim_sample(zero_eps, SCHEDULE, jax.random.PRNGKey(12), known.shape, num_steps=20,
                                      eta=1.0, **kwargs)
    steps = result.trajectory_steps
    seen = np.asarray(result.trajectory, np.float64)[1:, :, :8]  # [steps after the first, batch, 8]
    expected_variance = NOISE64[steps[1:]] / ALPHA_BARS64[steps[1:]]  # [R - 1]
    deviation = seen - np.asarray(known)[None, :, :8]
    np.testing.assert_allclose(deviation.var(axis=(1, 2)), expected_variance, rtol=0.08)
    np.testing.assert_allclose(deviation.mean(axis=(1, 2)) / np.sqrt(expected_variance), 0.0, atol=0.06)
    np.testing.assert_array_equal(np.asarray(result.x0)[:, :8], np.asarray(known)[:, :8])  # exact at the end


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_starts_from_standard_normal(sampler):
    """x_N ~ N(0, I) everywhere, also when infilling (the released code's infilling started from U[0, 1)):
    with eps = 0 the first x0 estimate is x_N / sqrt(alpha_bar_N)."""
    shape = (1024, 16)
    known = jnp.full(shape, 0.5)
    mask = (jnp.arange(16) < 8)[None]
    zero_eps = lambda x, level: jnp.zeros_like(x)  # noqa: E731
    for known_kwargs in ({}, {"known": known, "known_mask": mask}):
        kwargs = dict(clip_x0=False, trajectory_every=1, **known_kwargs)
        if sampler == "ddpm":
            result = gaussian.ddpm_sample(zero_eps, SCHEDULE, jax.random.PRNGKey(13), shape, **kwargs)
        else:
            result = gaussian.ddim_sample(zero_eps, SCHEDULE, jax.random.PRNGKey(13), shape, num_steps=10, **kwargs)
        assert result.trajectory_steps[0] == 1000
        start = np.asarray(result.trajectory[0], np.float64) * np.sqrt(ALPHA_BARS64[1000])  # x_N [1024, 16]
        assert abs(start.mean()) < 0.02 and abs(start.var() - 1.0) < 0.03, (start.mean(), start.var())
        assert abs(np.corrcoef(start[:, 0], start[:, 1])[0, 1]) < 0.1


# ---- DDIM on correlated Gaussian data: the exact law of its samples ----------------------------------
def ddim_moments(num_steps: int, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] of DDIM's output (from x_N ~ N(0, I)) with the exact eps for
    x0 ~ N(CORR_MEAN, CORR_COV), in float64, written from Song et al. 2021 eq. 12 over the strided steps:
    x_s = sqrt(a_s) x0_hat + sqrt(1 - a_s - sigma^2) eps_hat + sigma z,
    sigma = eta sqrt((1 - a_s) / (1 - a_t)) sqrt(1 - a_t / a_s). Every step is affine in x_t plus
    independent noise, so the moments propagate in closed form."""
    ts = np.round(np.linspace(1000, 0, num_steps + 1)).astype(int)
    mean, cov = np.zeros(D), np.eye(D)
    for t, s in zip(ts[:-1], ts[1:]):
        a_t, a_s = ALPHA_BARS64[t], ALPHA_BARS64[s]
        sigma = eta * np.sqrt((1 - a_s) / (1 - a_t)) * np.sqrt(1 - a_t / a_s)
        lin, offset = exact_x0_hat_map(t)
        # eps_hat = (x_t - sqrt(a_t) x0_hat) / sqrt(1 - a_t)
        eps_lin, eps_offset = (np.eye(D) - np.sqrt(a_t) * lin) / np.sqrt(1 - a_t), -np.sqrt(a_t / (1 - a_t)) * offset
        direction = np.sqrt(1 - a_s - sigma**2)
        step = np.sqrt(a_s) * lin + direction * eps_lin
        mean = step @ mean + np.sqrt(a_s) * offset + direction * eps_offset
        cov = step @ cov @ step.T + sigma**2 * np.eye(D)
    return mean, cov


@pytest.mark.parametrize("num_steps", [10, 50])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_samples_of_correlated_gaussian_data_have_the_exact_law(num_steps, eta):
    """With the exact denoiser, DDIM's samples have eq. 12's closed-form mean and covariance, within
    sampling error. (At few steps that law is not N(CORR_MEAN, CORR_COV): both etas shrink the variance
    of the data's weak directions, eta = 0 less than eta = 1; see the next test.)"""
    batch = 8192
    expected_mean, expected_cov = ddim_moments(num_steps, eta)
    samples = jax.jit(lambda rng: gaussian.ddim_sample(correlated_exact_eps, SCHEDULE, rng, (batch, D),
                                                       num_steps=num_steps, eta=eta, clip_x0=False).x0)(
        jax.random.PRNGKey(14))
    samples = np.asarray(samples, np.float64)
    variances = np.diag(expected_cov)
    np.testing.assert_allclose(samples.mean(0), expected_mean, atol=4 * np.sqrt(variances.max() / batch))
    # Standard error of a sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / n).
    standard_error = np.sqrt((np.outer(variances, variances) + expected_cov**2) / batch)
    assert np.all(np.abs(np.cov(samples.T) - expected_cov) < 5 * standard_error), np.cov(samples.T) - expected_cov


def test_ddim_deterministic_steps_lose_less_of_the_data_than_stochastic_ones():
    """The law of eq. 12 with the exact denoiser: at 1000 steps eta = 0 reproduces N(CORR_MEAN, CORR_COV)
    (every eigen-variance within 1%), and at 10 and 50 steps it keeps more of every eigen-variance than
    eta = 1. So with a perfect denoiser deterministic DDIM is the better sampler, not the worse."""
    eigvecs = _EIGVECS  # the data's principal directions, variances _EIGVALS

    def kept(num_steps, eta):  # variance kept along each principal direction, as a fraction of the data's
        mean, cov = ddim_moments(num_steps, eta)
        # x_N ~ N(0, I) misses q(x_N)'s mean sqrt(alpha_bar_N) CORR_MEAN (alpha_bar_N = 0.0067); the deterministic
        # path carries that offset to the data (2% of CORR_SD at 1000 steps).
        np.testing.assert_allclose(mean, CORR_MEAN, atol=0.03 * CORR_SD)
        return np.diag(eigvecs.T @ cov @ eigvecs) / _EIGVALS

    np.testing.assert_allclose(kept(1000, 0.0), 1.0, atol=0.01)
    for num_steps in (10, 50):
        assert np.all(kept(num_steps, 0.0) > kept(num_steps, 1.0)), num_steps
