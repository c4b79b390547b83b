"""The Atassi U-Net: output shape, input checks, parameter counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.models.params import count_params
from smdiff.models.unet import ResnetBlock, UNet, UNetConfig

TINY = UNetConfig(base_width=8, width_multipliers=(1, 2, 2), blocks_per_level=1, attention_heads=2,
                  attention_head_width=8)


def _count(params) -> int:
    return count_params(params)


def test_output_is_one_logit_per_cell_and_depends_on_t():
    model = UNet(TINY)
    x_t = (jnp.arange(2 * 32 * 24).reshape(2, 32, 24) % 7 == 0).astype(jnp.float32)  # [batch, time, pitch]
    # Weights drawn with numpy from the init's shapes: compiling flax's initialisers is far slower on CPU
    # than the forward pass under test.
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x_t, jnp.array([1, 50]))["params"]
    draw = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(0.1 * draw.standard_normal(s.shape), s.dtype), shapes)
    apply = jax.jit(model.apply)
    early = apply({"params": params}, x_t, jnp.array([1, 1]))
    late = apply({"params": params}, x_t, jnp.array([90, 90]))
    assert early.shape == (2, 32, 24) and early.dtype == jnp.float32
    assert not np.allclose(early, late)


def test_rolls_must_divide_by_the_downsampling():
    model = UNet(TINY)  # three levels: time and pitch must divide by 4
    with pytest.raises(ValueError, match="divisible by 4"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 30)), jnp.array([1]))


def test_resnet_block_parameter_count_matches_its_layers():
    block = ResnetBlock(width=16, norm_groups=8)
    params = jax.eval_shape(block.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 8)), jnp.zeros((1, 32)))["params"]
    convs = (3 * 3 * 8 * 16 + 16) + (3 * 3 * 16 * 16 + 16)
    norms = 2 * (2 * 16)
    time_projection = 32 * 2 * 16 + 2 * 16
    channel_change = 8 * 16 + 16  # 1x1 conv on the residual, since 8 != 16 channels
    assert _count(params) == convs + norms + time_projection + channel_change


def test_paper_configuration_parameter_count():
    """Base width 48, multipliers (1, 2, 4, 4), two ResNet blocks per level: 10.5M parameters (the count
    does not depend on the roll size; the paper's rolls are 384 x 56)."""
    shapes = jax.eval_shape(lambda: UNet(UNetConfig()).init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 56)),
                                                             jnp.array([1])))
    assert _count(shapes["params"]) == 10_505_473
