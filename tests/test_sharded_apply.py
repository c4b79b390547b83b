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
