"""The `dtype` (compute) option of the models: float32 parameters whatever the compute dtype, bfloat16
matmuls when asked, outputs close to float32 at init, float32 outputs for the losses."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.models.melody_vae import MelodyVAE, MelodyVAEConfig
from smdiff.models.transformer_ddpm import TransformerDDPM, TransformerDDPMConfig
from smdiff.models.transformer_mdn import TransformerMDN, TransformerMDNConfig
from smdiff.models.unet import UNet, UNetConfig

# Small configurations of each model and an input of its shape; values are smooth, deterministic, in [-1, 1].
_LATENTS = jnp.sin(0.37 * jnp.arange(4 * 8 * 6, dtype=jnp.float32)).reshape(4, 8, 6)
_ROLLS = (jnp.sin(0.37 * jnp.arange(2 * 16 * 16, dtype=jnp.float32)).reshape(2, 16, 16) > 0.5).astype(jnp.float32)
CASES = {
    "ddpm": (lambda dtype: TransformerDDPM(TransformerDDPMConfig(
                data_dim=6, d_model=32, num_layers=2, num_heads=4, mlp_dim=64, res_width=64, film_hidden=32,
                noise_encoding_dim=16, dtype=dtype)),
             (_LATENTS, jnp.linspace(0.1, 0.9, 4))),
    "mdn": (lambda dtype: TransformerMDN(TransformerMDNConfig(
                latent_dim=6, window_chunks=8, d_model=32, num_layers=2, num_heads=4, mlp_dim=64,
                residual_width=64, num_mixtures=3, dtype=dtype)),
            (_LATENTS,)),
    "vae": (lambda dtype: MelodyVAE(MelodyVAEConfig(z_size=8, encoder_size=32, decoder_sizes=(32, 32), dtype=dtype)),
            ((jnp.arange(2 * 32).reshape(2, 32) * 7 % 90).astype(jnp.int32), jax.random.PRNGKey(1))),
    "unet": (lambda dtype: UNet(UNetConfig(base_width=8, width_multipliers=(1, 2), blocks_per_level=1,
                                           attention_heads=2, attention_head_width=8, dtype=dtype)),
             (_ROLLS, jnp.array([3, 70]))),
}


def _init_and_apply(name: str, dtype: str):
    make, inputs = CASES[name]
    model = make(dtype)
    params = model.init(jax.random.PRNGKey(0), *inputs)["params"]
    return model, params, model.apply({"params": params}, *inputs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bfloat16_keeps_float32_parameters_and_outputs_close_to_float32(name):
    _, params32, out32 = _init_and_apply(name, "float32")
    model16, params16, out16 = _init_and_apply(name, "bfloat16")
    # Same parameter tree, all float32, equal values (init does not depend on the compute dtype).
    assert jax.tree.structure(params32) == jax.tree.structure(params16)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params16))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params32), jax.tree.leaves(params16)))
    # Outputs (eps, the mixture's parameters, x0 logits) are float32 and close: bfloat16 keeps 8 bits
    # of mantissa, so a relative error of a few parts in a thousand per matmul.
    for a, b in zip(jax.tree.leaves(out32), jax.tree.leaves(out16)):
        assert b.dtype == jnp.float32
        scale = float(jnp.max(jnp.abs(a)))
        assert float(jnp.max(jnp.abs(a - b))) <= 0.05 * scale
        assert float(jnp.max(jnp.abs(a - b))) > 0  # bfloat16 did round somewhere


def _matmul_operand_dtypes(jaxpr) -> set:
    """Dtypes of the operands of every dot_general and convolution, in nested jaxprs (scans) too."""
    dtypes = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            dtypes |= {var.aval.dtype for var in eqn.invars}
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    dtypes |= _matmul_operand_dtypes(inner)
    return dtypes


@pytest.mark.parametrize("name", sorted(CASES))
def test_bfloat16_runs_the_matmuls_in_bfloat16_and_float32_none(name):
    make, inputs = CASES[name]
    for dtype, expect_bf16 in (("float32", False), ("bfloat16", True)):
        model = make(dtype)
        params = model.init(jax.random.PRNGKey(0), *inputs)["params"]
        jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, *inputs))(params)
        operand_dtypes = _matmul_operand_dtypes(jaxpr.jaxpr)
        assert operand_dtypes
        assert (jnp.dtype(jnp.bfloat16) in operand_dtypes) == expect_bf16

