"""The Magenta checkpoint converter against TensorFlow itself.

A small checkpoint with Magenta's variable names and shapes is written by TF (SaveV2), with random
weights; a reference MusicVAE encoder and decoder are run in TF with the very op Magenta's LSTMBlockCell
uses (`LSTMBlockCell`, forget bias 1.0, no cell clip). The converted Flax model must agree to 1e-5.
"""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import jax
import jax.numpy as jnp

from smdiff import convert_magenta
from smdiff.models import magenta_checkpoint
from smdiff.models.params import count_params
from smdiff.models.melody_vae import MelodyVAE, MelodyVAEConfig

NUM_CLASSES = 90
STEPS = 32
# Unequal widths, so a swapped axis or a mis-split state cannot go unnoticed.
Z_SIZE, ENCODER_SIZE, DECODER_SIZES = 8, 24, (16, 20, 12)


def magenta_shapes(z_size, encoder_size, decoder_sizes, num_classes=NUM_CLASSES):
    """Magenta's variables for a categorical 2-bar melody MusicVAE, from how its graph builds them:
    LSTMBlockCell kernel [input + units, 4 units] and bias [4 units]; tf.layers.dense kernels [in, out]."""
    shapes = {}
    for direction in ("fw", "bw"):
        prefix = f"encoder/cell_0/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell"
        shapes[f"{prefix}/kernel"] = (num_classes + encoder_size, 4 * encoder_size)
        shapes[f"{prefix}/bias"] = (4 * encoder_size,)
    for name in ("mu", "sigma"):
        shapes[f"encoder/{name}/kernel"] = (2 * encoder_size, z_size)
        shapes[f"encoder/{name}/bias"] = (z_size,)
    shapes["decoder/z_to_initial_state/kernel"] = (z_size, 2 * sum(decoder_sizes))
    shapes["decoder/z_to_initial_state/bias"] = (2 * sum(decoder_sizes),)
    layer_input = num_classes + z_size  # previous one-hot event, concatenated with z
    for layer, units in enumerate(decoder_sizes):
        shapes[f"decoder/multi_rnn_cell/cell_{layer}/lstm_cell/kernel"] = (layer_input + units, 4 * units)
        shapes[f"decoder/multi_rnn_cell/cell_{layer}/lstm_cell/bias"] = (4 * units,)
        layer_input = units
    shapes["decoder/output_projection/kernel"] = (decoder_sizes[-1], num_classes)
    shapes["decoder/output_projection/bias"] = (num_classes,)
    return shapes


def count(shapes):
    return count_params([jax.ShapeDtypeStruct(shape, np.float32) for shape in shapes.values()])


def flax_param_count(config):
    events = jnp.zeros((1, config.seq_len), jnp.int32)
    shapes = jax.eval_shape(lambda: MelodyVAE(config).init(jax.random.PRNGKey(0), events, jax.random.PRNGKey(0)))
    return count_params(shapes)


def test_paper_size_parameter_count_equals_the_checkpoints():
    big = MelodyVAEConfig()  # cat-mel_2bar_big
    checkpoint_count = count(magenta_shapes(512, 2048, (2048, 2048, 2048)))
    assert checkpoint_count == 134_571_098
    assert flax_param_count(big) == checkpoint_count


def test_converter_reads_every_variable_of_magentas_cat_mel_2bar_big_graph():
    """tests/data holds the variable names and shapes of cat-mel_2bar_big as Magenta's own code defines them
    (derived by reading magenta/magenta's music_vae, see the file), independent of the converter's table."""
    listed = json.loads((pathlib.Path(__file__).parent / "data" / "magenta_cat-mel_2bar_big_variables.json")
                        .read_text())["variables"]
    shapes = {name: tuple(shape) for name, shape in listed.items()}
    config = magenta_checkpoint.config_from_shapes(shapes)
    assert config == MelodyVAEConfig()  # the defaults are cat-mel_2bar_big
    names = magenta_checkpoint.magenta_to_flax_names(config)
    assert set(names) == set(shapes) - {"global_step"}  # every model variable, nothing invented
    for tf_name, path in names.items():  # each goes to its namesake: direction, layer, head, leaf
        assert path[0] == tf_name.split("/")[0] and path[-1] == tf_name.split("/")[-1], (tf_name, path)
        assert ("/fw/" in tf_name) == ("fw" in path) and ("/bw/" in tf_name) == ("bw" in path), (tf_name, path)
        if tf_name.startswith("decoder/multi_rnn_cell/"):
            assert path[1] == tf_name.split("/")[2], (tf_name, path)  # cell_i -> cell_i
    # Every listed tensor converts, with the model's own shapes (zero-stride views: no 0.5 GB of memory).
    tensors = {name: np.broadcast_to(np.float32(0.0), shape) for name, shape in shapes.items()}
    params = magenta_checkpoint.flax_params_from_tensors(tensors, config)
    expected = jax.eval_shape(lambda: MelodyVAE(config).init(
        jax.random.PRNGKey(0), jnp.zeros((1, config.seq_len), jnp.int32), jax.random.PRNGKey(0)))["params"]
    assert jax.tree_util.tree_map(np.shape, params) == jax.tree_util.tree_map(lambda leaf: leaf.shape, expected)


def test_small_config_parameter_count_equals_the_checkpoints():
    small = MelodyVAEConfig(z_size=256, encoder_size=512, decoder_sizes=(256, 256))  # cat-mel_2bar_small
    assert flax_param_count(small) == count(magenta_shapes(256, 512, (256, 256)))


# --- the TensorFlow reference -------------------------------------------------------------------------

def tf_lstm_cell(inputs, state, kernel, bias):
    c, h = state
    zeros = tf.zeros([c.shape[1]])
    _, c, _, _, _, _, h = tf.raw_ops.LSTMBlockCell(
        x=inputs, cs_prev=c, h_prev=h, w=kernel, wci=zeros, wcf=zeros, wco=zeros, b=bias,
        forget_bias=1.0, cell_clip=-1.0, use_peephole=False)
    return c, h


def tf_encode(v, events):
    x = tf.one_hot(events, NUM_CLASSES)  # [batch, steps, classes]
    finals = []
    for direction, order in (("fw", range(STEPS)), ("bw", reversed(range(STEPS)))):
        prefix = f"encoder/cell_0/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell"
        state = (tf.zeros([events.shape[0], ENCODER_SIZE]),) * 2
        for t in order:
            state = tf_lstm_cell(x[:, t], state, v[f"{prefix}/kernel"], v[f"{prefix}/bias"])
        finals.append(state[1])
    hidden = tf.concat(finals, axis=1)
    mu = tf.matmul(hidden, v["encoder/mu/kernel"]) + v["encoder/mu/bias"]
    sigma = tf.nn.softplus(tf.matmul(hidden, v["encoder/sigma/kernel"]) + v["encoder/sigma/bias"])
    return mu.numpy(), sigma.numpy()


def tf_decode(v, z, targets=None):
    """Teacher-forced on `targets` when given, else greedy (argmax) free running. -> (logits, events)."""
    batch = z.shape[0]
    flat = tf.tanh(tf.matmul(z, v["decoder/z_to_initial_state/kernel"]) + v["decoder/z_to_initial_state/bias"])
    pieces = tf.split(flat, [size for units in DECODER_SIZES for size in (units, units)], axis=1)
    states = [(pieces[2 * i], pieces[2 * i + 1]) for i in range(len(DECODER_SIZES))]  # LSTMStateTuple(c, h)
    previous = tf.zeros([batch, NUM_CLASSES])
    all_logits, events = [], []
    for t in range(STEPS):
        layer_input = tf.concat([previous, z], axis=1)
        for layer in range(len(DECODER_SIZES)):
            prefix = f"decoder/multi_rnn_cell/cell_{layer}/lstm_cell"
            states[layer] = tf_lstm_cell(layer_input, states[layer], v[f"{prefix}/kernel"], v[f"{prefix}/bias"])
            layer_input = states[layer][1]
        logits = tf.matmul(layer_input, v["decoder/output_projection/kernel"]) + v["decoder/output_projection/bias"]
        event = tf.argmax(logits, axis=1, output_type=tf.int32)
        all_logits.append(logits)
        events.append(event)
        previous = tf.one_hot(event if targets is None else targets[:, t], NUM_CLASSES)
    return tf.stack(all_logits, axis=1).numpy(), tf.stack(events, axis=1).numpy()


@pytest.fixture(scope="module")
def magenta_checkpoint_path(tmp_path_factory):
    """A TF checkpoint with Magenta's names and shapes (random weights), plus the extras a real one has."""
    rng = np.random.default_rng(0)
    variables = {name: rng.normal(0.0, 0.3, shape).astype(np.float32)
                 for name, shape in magenta_shapes(Z_SIZE, ENCODER_SIZE, DECODER_SIZES).items()}
    extras = {"global_step": np.array(12345, np.int64),
              "encoder/mu/kernel/Adam": np.zeros((2 * ENCODER_SIZE, Z_SIZE), np.float32)}
    prefix = str(tmp_path_factory.mktemp("magenta") / "model.ckpt-12345")
    names = [*variables, *extras]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(value) for value in [*variables.values(), *extras.values()]])
    return prefix, variables


def test_checkpoint_written_with_magentas_names(magenta_checkpoint_path):
    prefix, variables = magenta_checkpoint_path
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    assert {name: tuple(shapes[name]) for name in variables} == {n: v.shape for n, v in variables.items()}


def test_converted_encoder_and_decoder_match_tensorflow(magenta_checkpoint_path):
    prefix, variables = magenta_checkpoint_path
    config, params = magenta_checkpoint.read_magenta_checkpoint(prefix)
    assert config == MelodyVAEConfig(z_size=Z_SIZE, encoder_size=ENCODER_SIZE, decoder_sizes=DECODER_SIZES)
    model = MelodyVAE(config)
    tf_vars = {name: tf.constant(value) for name, value in variables.items()}

    events = np.random.default_rng(1).integers(0, NUM_CLASSES, (5, STEPS)).astype(np.int32)
    mu, sigma = model.apply({"params": params}, jnp.asarray(events), method=model.encode)
    tf_mu, tf_sigma = tf_encode(tf_vars, tf.constant(events))
    np.testing.assert_allclose(mu, tf_mu, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(sigma, tf_sigma, atol=1e-5, rtol=1e-5)
    assert np.abs(tf_mu).max() > 0.1  # the comparison is not between near-zero outputs

    z = np.random.default_rng(2).normal(size=(5, Z_SIZE)).astype(np.float32)
    tf_logits, tf_events = tf_decode(tf_vars, tf.constant(z))
    np.testing.assert_array_equal(model.apply({"params": params}, jnp.asarray(z), method=model.decode), tf_events)
    assert len(np.unique(tf_events)) > 3  # greedy decoding is not stuck on one class

    # The same unroll, fed the true events (teacher forcing) and free running, gives TF's logits.
    decoder = lambda module, *args: module.decoder(*args)  # noqa: E731
    shape = events.shape
    for targets, own in ((events, np.zeros(shape, bool)), (np.zeros_like(events), np.ones(shape, bool))):
        logits, _ = model.apply({"params": params}, jnp.asarray(z), jnp.asarray(targets), jnp.asarray(own), None,
                                method=decoder)
        tf_reference, _ = tf_decode(tf_vars, tf.constant(z), None if own.all() else tf.constant(targets))
        np.testing.assert_allclose(logits, tf_reference, atol=1e-5, rtol=1e-5)


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    prefix = str(tmp_path / "not_a_vae")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["dense/kernel"], shape_and_slices=[""],
                      tensors=[tf.zeros([3, 4])])
    with pytest.raises(ValueError, match="not a MusicVAE melody checkpoint"):
        magenta_checkpoint.read_magenta_checkpoint(prefix)


def test_shape_mismatch_is_a_clear_error():
    config = MelodyVAEConfig(z_size=Z_SIZE, encoder_size=ENCODER_SIZE, decoder_sizes=DECODER_SIZES)
    tensors = {name: np.zeros(shape, np.float32)
               for name, shape in magenta_shapes(Z_SIZE, ENCODER_SIZE, DECODER_SIZES).items()}
    tensors["decoder/output_projection/kernel"] = np.zeros((DECODER_SIZES[-1] + 1, NUM_CLASSES), np.float32)
    with pytest.raises(ValueError, match="decoder/output_projection/kernel"):
        magenta_checkpoint.flax_params_from_tensors(tensors, config)


def test_converted_workdir_loads_like_a_trained_one(magenta_checkpoint_path, tmp_path):
    from smdiff.configurables import load_trained

    prefix, variables = magenta_checkpoint_path
    workdir = str(tmp_path / "converted")
    convert_magenta.convert(prefix, workdir)
    task, params = load_trained(workdir)
    assert task.model.config == MelodyVAEConfig(z_size=Z_SIZE, encoder_size=ENCODER_SIZE, decoder_sizes=DECODER_SIZES)
    events = np.random.default_rng(3).integers(0, NUM_CLASSES, (2, STEPS)).astype(np.int32)
    mu, _ = task.model.apply({"params": params}, jnp.asarray(events), method=task.model.encode)
    tf_mu, _ = tf_encode({name: tf.constant(value) for name, value in variables.items()}, tf.constant(events))
    np.testing.assert_allclose(mu, tf_mu, atol=1e-5, rtol=1e-5)
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        convert_magenta.convert(prefix, workdir)
