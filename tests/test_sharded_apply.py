"""`ShardedApply`, the one pad-jit-unpad path of the codec and the generators, on the 8 CPU devices of
conftest: any batch size gives exactly the unsharded function's rows, on the batch axis of each output."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.training.sharding import ShardedApply


def affine(scale, offset, x):  # scale, offset replicated; x [n, d]
    y = x * scale + offset
    return y, jnp.stack([y, -y])  # [n, d] and [2, n, d]: batch axes 0 and 1


@pytest.mark.parametrize("n", [1, 5, 8, 11])
def test_any_batch_size_gives_the_unsharded_rows(n):
    assert jax.device_count() == 8
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    apply = ShardedApply(affine, num_replicated=2, out_batch_axes=(0, 1))
    assert apply.padded_size(n) == -(-n // 8) * 8
    y, stacked = apply(jnp.float32(2.0), jnp.float32(1.0), x)
    want_y, want_stacked = affine(2.0, 1.0, x)
    assert y.shape == (n, 3) and stacked.shape == (2, n, 3)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(stacked, want_stacked)


def test_an_output_that_is_none_stays_none():
    apply = ShardedApply(lambda x: (x + 1, None), num_replicated=0, out_batch_axes=(0, None))
    y, nothing = apply(np.arange(3, dtype=np.int32))
    assert nothing is None
    np.testing.assert_array_equal(y, [1, 2, 3])


def test_group_mode_gives_the_same_bits_on_one_device_and_on_eight(monkeypatch):
    """A DDIM sample of a small TransformerDDPM (group mode): the one-device and 8-device results are
    equal bit for bit. (Split plainly over the mesh, they differ in the last bits: XLA compiles the
    1-device and the partitioned program differently.) Each group of rows has its own key: a group does
    not change when the rows of other groups do."""
    from smdiff.generators.diffusion import DiffusionGenerator
    from smdiff.models.transformer_ddpm import TransformerDDPM, TransformerDDPMConfig
    from smdiff.tasks.latent_diffusion import LatentDiffusionTask
    from smdiff.training import sharding

    monkeypatch.setenv("SMDIFF_ROWS_PER_STEP", "2")
    task = LatentDiffusionTask(TransformerDDPM(TransformerDDPMConfig(
        data_dim=5, d_model=32, num_layers=2, num_heads=2, mlp_dim=64, res_width=64, film_hidden=32,
        noise_encoding_dim=32)))
    known = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 4, 5)))
    params = task.init(jax.random.PRNGKey(7), {"latents": jnp.asarray(known[:2])})
    mask = np.array([True, False, False, True])
    results = {}
    for devices in (1, 8):
        monkeypatch.setattr(sharding, "local_mesh", lambda devices=devices: sharding.make_mesh(jax.devices()[:devices]))
        generator = DiffusionGenerator(task, params, 4, sampler="ddim", num_sampling_steps=4)
        results[devices] = [np.asarray(generator.sample(jax.random.PRNGKey(3), 5)),
                            np.asarray(generator.infill(jax.random.PRNGKey(3), known, mask))]
    for one, eight in zip(results[1], results[8]):
        np.testing.assert_array_equal(one, eight)
    changed = known.copy()
    changed[2:] += 1.0  # the rows of every group but the first (rows 0-1)
    again = np.asarray(generator.infill(jax.random.PRNGKey(3), changed, mask))
    np.testing.assert_array_equal(again[:2], results[8][1][:2])
