"""The convert-magenta job: Magenta's published MusicVAE 2-bar melody checkpoint as an smdiff VAE workdir.

    smdiff convert-magenta --magenta_checkpoint=cat-mel_2bar_big.ckpt --workdir=workdirs/cat-mel_2bar_big

writes a workdir like a training run's: `config.gin` (the model, with `cat-mel_2bar_big`'s objective)
and an Orbax checkpoint of the params at step 0, so `smdiff.configurables.load_trained(workdir)` returns
the Magenta model and every job that takes a VAE workdir (latents, sampling) takes this one. The
conversion itself is `smdiff.models.magenta_checkpoint`.
"""
import logging

import jax
import jax.numpy as jnp
from absl import app, flags

from smdiff import jobflags
from smdiff.models.magenta_checkpoint import read_magenta_checkpoint, workdir_config
from smdiff.models.melody_vae import MelodyVAEConfig
from smdiff.training.checkpointing import Checkpointer
from smdiff.training.paths import run_path
from smdiff.training.train_state import TrainState
from smdiff.training.workdir import CONFIG_FILE

FLAGS = jobflags.namespace()
flags.DEFINE_string("workdir", None, "the smdiff workdir to write", flag_values=FLAGS)
flags.DEFINE_string("magenta_checkpoint", None,
                    "prefix of a MusicVAE melody checkpoint, e.g. cat-mel_2bar_big.ckpt (no .index suffix)",
                    flag_values=FLAGS)


def convert(magenta_checkpoint: str, workdir: str) -> MelodyVAEConfig:
    """Reads a Magenta checkpoint and writes it as an smdiff VAE workdir (config.gin + step-0 checkpoint)."""
    config, params = read_magenta_checkpoint(magenta_checkpoint)
    run = run_path(workdir)  # a local folder or a URL
    checkpoint_dir = run / "checkpoints"
    if checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()):
        raise FileExistsError(f"{checkpoint_dir} already holds checkpoints; convert into a new workdir")
    run.mkdir(parents=True, exist_ok=True)
    # Only params: no optimizer state or EMA (a fine-tuning run starts its own).
    state = TrainState(step=jnp.zeros((), jnp.int32), params=jax.tree_util.tree_map(jnp.asarray, params),
                       ema_params=None, opt_state=None, rng=jax.random.PRNGKey(0))
    checkpointer = Checkpointer(checkpoint_dir, asynchronous=False)
    try:
        checkpointer.save(state, {"batches_consumed": 0, "seed": 0, "global_batch_size": 0})
        checkpointer.wait()
    finally:
        checkpointer.close()
    (run / CONFIG_FILE).write_text(workdir_config(config, magenta_checkpoint))
    logging.info("converted %s (%s) into %s", magenta_checkpoint, config, workdir)
    return config


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    if not FLAGS.magenta_checkpoint or not FLAGS.workdir:
        raise app.UsageError("both --magenta_checkpoint and --workdir are required")
    config = convert(FLAGS.magenta_checkpoint, FLAGS.workdir)
    print(f"wrote {FLAGS.workdir}: {config}")
