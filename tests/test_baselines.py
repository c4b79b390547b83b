"""Slerp interpolation and N(0, I) prior baselines (smdiff/generators/baselines.py) and the masks of base.py.

The latents here are constructed geometrically (points on a circle in the VAE's coordinates), because
the checks are exact statements about interpolation, not about music.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.data.latents import LatentScaling
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
    generator = InterpolationGenerator(SCALING, held_latents=window[None])
    filled = np.asarray(generator.infill(jax.random.PRNGKey(0), known, jnp.asarray(mask)))
    np.testing.assert_array_equal(filled[0, mask], window[mask])  # given latents exact
    # Positions 2..5 lie evenly between latents 1 and 6 on the same circle: the window itself.
    np.testing.assert_allclose(filled[0], window, atol=1e-5)
    with pytest.raises(base.UnsupportedTaskError):
        generator.infill(jax.random.PRNGKey(0), known, jnp.asarray(base.prefix_mask(K, 4)))


def test_interpolation_samples_run_between_real_end_points():
    held = np.stack([_circle_window(0.0, 0.2), _circle_window(1.0, -0.1)])
    generator = InterpolationGenerator(SCALING, held_latents=held)
    samples = np.asarray(generator.sample(jax.random.PRNGKey(1), 6))
    assert samples.shape == (6, K, 3)
    for sample in samples:
        source = held[np.argmin(np.abs(held[:, 0] - sample[0]).sum(-1))]
        np.testing.assert_allclose(sample[[0, -1]], source[[0, -1]], atol=1e-5)
        np.testing.assert_allclose(sample, source, atol=1e-5)  # the held windows are great-circle arcs
    with pytest.raises(ValueError, match="held_latents"):
        InterpolationGenerator(SCALING, held_latents=held[:, :, :2])


def test_prior_draws_are_standard_normal_in_vae_coordinates_and_keep_known():
    generator = PriorGenerator(SCALING, sequence_length=K)
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
