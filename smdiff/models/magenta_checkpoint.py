"""Converts Magenta's published MusicVAE 2-bar melody checkpoints (TF1) into smdiff's Flax VAE.

`cat-mel_2bar_big` (and `cat-mel_2bar_small`) store one fused kernel and bias per LSTM layer under the
names Magenta's graph gives them; `melody_vae.py` keeps the same layout, so each TF variable becomes one
Flax parameter unchanged (gate order i, j, f, o; the forget bias of 1.0 is added at run time by both).
The sizes are read from the checkpoint's shapes. Optimizer slots and `global_step` are ignored (counted).

`smdiff convert-magenta` (smdiff/convert_magenta.py) writes them as a train workdir.
"""
import logging
from collections.abc import Mapping

import jax
import numpy as np
from flax import traverse_util

from smdiff.models.melody_vae import MelodyVAE, MelodyVAEConfig

_ENCODER_LSTM = "encoder/cell_0/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell"
_DECODER_LSTM = "decoder/multi_rnn_cell/cell_{layer}/lstm_cell"


def magenta_to_flax_names(config: MelodyVAEConfig) -> dict[str, tuple[str, ...]]:
    """Magenta TF variable name -> path of the same tensor in smdiff's Flax params."""
    layers = {
        _ENCODER_LSTM.format(direction="fw"): ("encoder", "fw"),
        _ENCODER_LSTM.format(direction="bw"): ("encoder", "bw"),
        "encoder/mu": ("encoder", "mu"),
        "encoder/sigma": ("encoder", "sigma"),
        "decoder/z_to_initial_state": ("decoder", "z_to_initial_state"),
        "decoder/output_projection": ("decoder", "output_projection"),
    }
    for layer in range(len(config.decoder_sizes)):
        layers[_DECODER_LSTM.format(layer=layer)] = ("decoder", f"cell_{layer}")
    return {f"{tf_layer}/{leaf}": (*path, leaf) for tf_layer, path in layers.items() for leaf in ("kernel", "bias")}


def config_from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> MelodyVAEConfig:
    """The VAE sizes implied by a checkpoint's variable shapes (name -> shape)."""
    def shape(name):
        if name not in shapes:
            raise ValueError(f"not a MusicVAE melody checkpoint: variable {name!r} is missing")
        return tuple(shapes[name])

    encoder_kernel = shape(_ENCODER_LSTM.format(direction="fw") + "/kernel")
    encoder_size = encoder_kernel[1] // 4
    decoder_sizes = []
    while _DECODER_LSTM.format(layer=len(decoder_sizes)) + "/bias" in shapes:
        decoder_sizes.append(shape(_DECODER_LSTM.format(layer=len(decoder_sizes)) + "/bias")[0] // 4)
    if not decoder_sizes:
        raise ValueError("not a MusicVAE melody checkpoint: no decoder LSTM layers "
                         f"({_DECODER_LSTM.format(layer=0)}/...) found")
    return MelodyVAEConfig(
        z_size=shape("encoder/mu/kernel")[1],
        encoder_size=encoder_size,
        decoder_sizes=tuple(decoder_sizes),
        num_classes=encoder_kernel[0] - encoder_size)


def flax_params_from_tensors(tensors: Mapping[str, np.ndarray], config: MelodyVAEConfig) -> dict:
    """Builds smdiff's param tree from Magenta's tensors (name -> array), checking every name and shape."""
    dummy_events = np.zeros((1, config.seq_len), np.int32)
    expected = jax.eval_shape(
        lambda: MelodyVAE(config).init(jax.random.PRNGKey(0), dummy_events, jax.random.PRNGKey(0)))["params"]
    params: dict = {}
    for tf_name, path in magenta_to_flax_names(config).items():
        if tf_name not in tensors:
            raise ValueError(f"checkpoint lacks {tf_name!r}, needed for params{list(path)}")
        value = np.asarray(tensors[tf_name], np.float32)
        want = _lookup(expected, path).shape
        if value.shape != want:
            raise ValueError(f"{tf_name}: checkpoint shape {value.shape}, model expects {want} for {config}")
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    uncovered = set(traverse_util.flatten_dict(expected)) - set(traverse_util.flatten_dict(params))
    if uncovered:  # the name map above is missing an entry
        raise ValueError(f"no Magenta variable maps to the model params {sorted(uncovered)}")
    return params


def read_magenta_checkpoint(path: str) -> tuple[MelodyVAEConfig, dict]:
    """Reads a Magenta MusicVAE melody checkpoint (prefix path) -> (config, Flax params of MelodyVAE)."""
    import tensorflow as tf  # only this reader needs TF; keep the import off the JAX-only paths

    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    config = config_from_shapes(shapes)
    wanted = magenta_to_flax_names(config)
    ignored = sorted(set(shapes) - set(wanted))
    logging.info("%s: %d model variables, %d ignored (optimizer slots, global_step): %s",
                 path, len(wanted), len(ignored), ignored[:8])
    tensors = {name: reader.get_tensor(name) for name in wanted if name in shapes}
    return config, flax_params_from_tensors(tensors, config)


def _lookup(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def workdir_config(config: MelodyVAEConfig, source: str) -> str:
    """The gin config of a converted workdir: the model's sizes and MelodyVAETask with its defaults
    (those are `cat-mel_2bar_big`'s objective)."""
    return "\n".join([
        f"# Converted from the Magenta checkpoint {source} by smdiff convert-magenta.",
        "train.task = @melody_vae.MelodyVAETask()",
        "melody_vae.MelodyVAETask.model = @melody_vae.MelodyVAE()",
        "melody_vae.MelodyVAE.config = @melody_vae.MelodyVAEConfig()",
        f"melody_vae.MelodyVAEConfig.z_size = {config.z_size}",
        f"melody_vae.MelodyVAEConfig.encoder_size = {config.encoder_size}",
        f"melody_vae.MelodyVAEConfig.decoder_sizes = {tuple(config.decoder_sizes)}",
        f"melody_vae.MelodyVAEConfig.num_classes = {config.num_classes}",
        f"melody_vae.MelodyVAEConfig.seq_len = {config.seq_len}",
        ""])
