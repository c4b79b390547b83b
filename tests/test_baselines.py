"""Slerp interpolation and N(0, I) prior baselines (smdiff/generators/baselines.py) and the masks of base.py.

The latents here are constructed geometrically (points on a circle in the VAE's coordinates), because
the checks are exact statements about interpolation, not about music.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.codec.latent_codec import LatentScaling
from smdiff.generators import base
from smdiff.generators.baselines import InterpolationGenerator, PriorGenerator, gap_endpoints, slerp

# A VAE with z_size 6 of which dims 1, 3, 4 are active; the data range is [-3, 3].
SCALING = LatentScaling(active_dims=(1, 3, 4), minimum=-3.0, maximum=3.0, z_size=6)
K = 8


def _circle_window(start_angle: float, step: float) -> np.ndarray:
    """[K, 3] scaled latents whose VAE coordinates lie on a circle of radius 2 in the plane of dims 1, 3."""
    angles = start_angle + step * np.arange(K)
    vae = np.stack([2 * np.cos(angles), 2 * np.sin(angles), np.zeros(K)], axis=-1)
    return (2 * (vae - SCALING.minimum) / (SCALING.maximum - SCALING.minimum) - 1).astype(np.float32)


def test_slerp_end_points_and_unit_norm():
    rng = np.random.default_rng(0)
    p0, p1 = rng.normal(size=(2, 5, 7))
    p0 /= np.linalg.norm(p0, axis=-1, keepdims=True)
    p1 /= np.linalg.norm(p1, axis=-1, keepdims=True)
    t = np.linspace(0, 1, 11)
    path = np.asarray(slerp(p0[:, None], p1[:, None], t[None, :]))  # [5, 11, 7]
    np.testing.assert_allclose(path[:, 0], p0, atol=1e-6)
    np.testing.assert_allclose(path[:, -1], p1, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=-1), 1.0, atol=1e-6)
    # Constant angular speed: the angle from p0 grows linearly in t.
    total = np.arccos(np.sum(p0 * p1, -1))[:, None]
    np.testing.assert_allclose(np.arccos(np.clip(np.sum(path * p0[:, None], -1), -1, 1)), t * total, atol=1e-3)
    # Parallel vectors of different lengths: a straight line, not NaN.
    np.testing.assert_allclose(slerp(jnp.array([1.0, 0.0]), jnp.array([3.0, 0.0]), 0.5), [2.0, 0.0], atol=1e-6)


def test_masks_and_gap_endpoints():
    mask = base.paper_infill_mask(32, 16)
    np.testing.assert_array_equal(np.flatnonzero(~mask), np.arange(8, 24))
    before, after, fraction = gap_endpoints(mask)
    np.testing.assert_array_equal(before[8:24], 7)
    np.testing.assert_array_equal(after[8:24], 24)
    np.testing.assert_allclose(fraction[8:24], (np.arange(8, 24) - 7) / 17)
    np.testing.assert_array_equal(fraction[mask], 0.0)
    np.testing.assert_array_equal(base.prefix_mask(5, 2), [True, True, False, False, False])
    with pytest.raises(base.UnsupportedTaskError, match="both sides"):
        gap_endpoints(base.prefix_mask(8, 3))
    with pytest.raises(ValueError):
        base.paper_infill_mask(32, 15)


def test_interpolation_infill_follows_the_great_circle():
    window = _circle_window(0.3, 0.25)
    known = jnp.asarray(window[None])
    mask = np.array([True, True, False, False, False, False, True, True])
    generator = InterpolationGenerator(SCALING, held_latents=window[None], space="active")
    filled = np.asarray(generator.infill(jax.random.PRNGKey(0), known, jnp.asarray(mask)))
    np.testing.assert_array_equal(filled[0, mask], window[mask])  # given latents exact
    # Positions 2..5 lie evenly between latents 1 and 6 on the same circle: the window itself.
    np.testing.assert_allclose(filled[0], window, atol=1e-5)
    with pytest.raises(base.UnsupportedTaskError):
        generator.infill(jax.random.PRNGKey(0), known, jnp.asarray(base.prefix_mask(K, 4)))


def test_interpolation_samples_run_between_real_end_points():
    held = np.stack([_circle_window(0.0, 0.2), _circle_window(1.0, -0.1)])
    generator = InterpolationGenerator(SCALING, held_latents=held, space="active")
    samples = np.asarray(generator.sample(jax.random.PRNGKey(1), 6))
    assert samples.shape == (6, K, 3)
    for sample in samples:
        source = held[np.argmin(np.abs(held[:, 0] - sample[0]).sum(-1))]
        np.testing.assert_allclose(sample[[0, -1]], source[[0, -1]], atol=1e-5)
        np.testing.assert_allclose(sample, source, atol=1e-5)  # the held windows are great-circle arcs
    with pytest.raises(ValueError, match="held_latents"):
        InterpolationGenerator(SCALING, held_latents=held[:, :, :2])


def test_full_space_slerps_whole_z_with_noise_refilled_unused_dims():
    """The released code's space: the two ends are whole z vectors with N(0, 1) in the unused dims, so the path
    is a slerp in z_size dims whose active components are c0(t) a0 + c1(t) a1 with the slerp weights of the
    angle W between the full vectors, which the noise pushes towards 90 degrees."""
    scaling = LatentScaling(active_dims=(1, 3, 4), minimum=-3.0, maximum=3.0, z_size=40)
    window = _circle_window(0.3, 0.1)  # the ends 0.7 rad apart
    full = InterpolationGenerator(scaling, held_latents=window[None])  # the default space
    active = InterpolationGenerator(scaling, held_latents=window[None], space="active")
    assert full.space == "full"

    def vae(x):  # scaled [..., 3] -> VAE coordinates of the active dims
        return (np.asarray(x) + 1) / 2 * (scaling.maximum - scaling.minimum) + scaling.minimum

    path_full = vae(full.sample(jax.random.PRNGKey(4), 64))  # [64, K, 3]
    path_active = vae(active.sample(jax.random.PRNGKey(4), 64))
    a0, a1 = vae(window[0]), vae(window[-1])
    np.testing.assert_allclose(path_full[:, 0], np.broadcast_to(a0, (64, 3)), atol=1e-4)
    np.testing.assert_allclose(path_full[:, -1], np.broadcast_to(a1, (64, 3)), atol=1e-4)
    t = np.linspace(0, 1, K)
    for sample in path_full[:4]:
        # Coefficients of a0, a1 at every t (a0, a1 span the plane of dims 1, 3), then the one angle W.
        coefficients = np.linalg.lstsq(np.stack([a0, a1], 1), sample.T, rcond=None)[0]  # [2, K]
        np.testing.assert_allclose(np.stack([a0, a1], 1) @ coefficients, sample.T, atol=1e-4)
        # Solve sin((1-t)W)/sin W = c0(t) for W at t = 1/(K-1), then check every t against it.
        grid = np.linspace(1e-3, np.pi - 1e-3, 20001)
        w = grid[np.argmin(np.abs(np.sin((1 - t[1]) * grid) / np.sin(grid) - coefficients[0, 1]))]
        np.testing.assert_allclose(coefficients[0], np.sin((1 - t) * w) / np.sin(w), atol=2e-3)
        np.testing.assert_allclose(coefficients[1], np.sin(t * w) / np.sin(w), atol=2e-3)
        assert abs(w - np.pi / 2) < 0.5 < abs(0.7 - np.pi / 2)  # nearer 90 degrees than the real latents
    # The active space keeps the circle's radius 2; the full space's wider arc lengthens the active
    # components mid-path (they are less than 90 degrees apart).
    middle = K // 2
    np.testing.assert_allclose(np.linalg.norm(path_active[:, middle], axis=-1), 2.0, atol=1e-4)
    assert np.linalg.norm(path_full[:, middle], axis=-1).mean() > 1.15 * 2.0
    # Infilling: given latents exact; the refill noise comes from rng (the active space ignores it).
    mask = np.array([True, True, False, False, False, False, True, True])
    known = jnp.asarray(window[None])
    filled = [np.asarray(full.infill(jax.random.PRNGKey(seed), known, jnp.asarray(mask))) for seed in (0, 1)]
    np.testing.assert_array_equal(filled[0][0, mask], window[mask])
    assert not np.allclose(filled[0], filled[1])
    np.testing.assert_array_equal(active.infill(jax.random.PRNGKey(0), known, jnp.asarray(mask)),
                                  active.infill(jax.random.PRNGKey(1), known, jnp.asarray(mask)))
    with pytest.raises(ValueError, match="space"):
        InterpolationGenerator(scaling, held_latents=window[None], space="scaled")


def test_prior_draws_are_standard_normal_in_vae_coordinates_and_keep_known():
    generator = PriorGenerator(SCALING, window_chunks=K)
    samples = generator.sample(jax.random.PRNGKey(2), 4000)
    assert samples.shape == (4000, K, 3)
    vae = (np.asarray(samples) + 1) / 2 * (SCALING.maximum - SCALING.minimum) + SCALING.minimum
    assert abs(vae.mean()) < 0.02 and abs(vae.std() - 1.0) < 0.02
    known = jnp.asarray(np.stack([_circle_window(0.0, 0.2)] * 3))
    mask = base.paper_infill_mask(K, 4)
    filled = np.asarray(generator.infill(jax.random.PRNGKey(3), known, jnp.asarray(mask)))
    np.testing.assert_array_equal(filled[:, mask], np.asarray(known)[:, mask])
    assert not np.allclose(filled[:, ~mask], np.asarray(known)[:, ~mask])
    with pytest.raises(ValueError, match="bool"):
        generator.infill(jax.random.PRNGKey(3), known, jnp.asarray(mask, jnp.int32))
