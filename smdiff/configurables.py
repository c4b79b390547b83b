"""Everything gin may configure, registered in one place (t5x style: gin stays at the edges), and
`load_trained`, which rebuilds a trained Task from its workdir's gin config.

Jobs import this module before parsing gin files; library modules never import gin. Each section below
registers one part of smdiff under a gin module name, so gin files read
`melody_vae.MelodyVAE.hidden_size = 256` and the like.
"""
import gin

from smdiff.data import tfds_io as _tfds_io
from smdiff.training import workdir as _workdir
from smdiff.training.task import Task

# --- training core (smdiff/training, smdiff/training/loop.py) -------------------------------------------------
# Gin files bind `train.task = @SomeTask()`, `train.train_data = @train/TfdsSource()`,
# `train.optimizer = @OptimizerConfig()` and the run options of `train` (see gin/runs/).
from smdiff.training import input_pipeline as _input_pipeline
from smdiff.training import loop as _loop
from smdiff.training import optimizer as _optimizer

train = gin.external_configurable(_loop.train, name="train", module="smdiff", denylist=["workdir"])
gin.external_configurable(_optimizer.OptimizerConfig, name="OptimizerConfig", module="training")
gin.external_configurable(_input_pipeline.TfdsSource, name="TfdsSource", module="training")
# --- end training core ---

# --- melody VAE (smdiff/models/melody_vae.py, smdiff/tasks/melody_vae.py) -----------------------------
# Gin files (gin/models/melody_vae_*.gin) bind `train.task = @melody_vae.MelodyVAETask()`, its `model`
# to `@melody_vae.MelodyVAE()` and that model's `config` to `@melody_vae.MelodyVAEConfig()`.
from smdiff.models import melody_vae as _melody_vae_model
from smdiff.tasks import melody_vae as _melody_vae_task

gin.external_configurable(_melody_vae_model.MelodyVAEConfig, name="MelodyVAEConfig", module="melody_vae")
gin.external_configurable(_melody_vae_model.MelodyVAE, name="MelodyVAE", module="melody_vae")
gin.external_configurable(_melody_vae_task.MelodyVAETask, name="MelodyVAETask", module="melody_vae")
# --- end melody VAE ---

# --- TransformerMDN baseline (smdiff/models/transformer_mdn.py, smdiff/tasks/mdn.py) -----------------------
# Gin files (gin/models/transformer_mdn_*.gin) bind `train.task = @mdn.MDNTask()`, its `model` to
# `@mdn.TransformerMDN()` and that model's `config` to `@mdn.TransformerMDNConfig()`.
from smdiff.models import transformer_mdn as _transformer_mdn_model
from smdiff.tasks import mdn as _mdn_task

gin.external_configurable(_transformer_mdn_model.TransformerMDNConfig, name="TransformerMDNConfig", module="mdn")
gin.external_configurable(_transformer_mdn_model.TransformerMDN, name="TransformerMDN", module="mdn")
gin.external_configurable(_mdn_task.MDNTask, name="MDNTask", module="mdn")
# --- end TransformerMDN ---

# --- latent diffusion (smdiff/models/transformer_ddpm.py, smdiff/tasks/latent_diffusion.py) ---------------
# Gin files (gin/models/transformer_ddpm_*.gin) bind `train.task = @diffusion.LatentDiffusionTask()`, its
# `model` to `@diffusion.TransformerDDPM()` and that model's `config` to `@diffusion.TransformerDDPMConfig()`.
from smdiff.models import transformer_ddpm as _transformer_ddpm_model
from smdiff.tasks import latent_diffusion as _latent_diffusion_task

gin.external_configurable(_transformer_ddpm_model.TransformerDDPMConfig, name="TransformerDDPMConfig",
                          module="diffusion")
gin.external_configurable(_transformer_ddpm_model.TransformerDDPM, name="TransformerDDPM", module="diffusion")
gin.external_configurable(_latent_diffusion_task.LatentDiffusionTask, name="LatentDiffusionTask", module="diffusion")
# --- end latent diffusion ---

# --- binomial diffusion on piano rolls (smdiff/models/unet.py, smdiff/tasks/binomial.py) ---------------
# Gin files (gin/models/unet_*.gin) bind `train.task = @binomial.BinomialTask()`, its `model` to
# `@binomial.UNet()` with `config = @binomial.UNetConfig()`, and its `density` to
# `@binomial.pianoroll_density()`, the density of ones saved with the built `pianorolls` dataset.
from smdiff.models import unet as _unet_model
from smdiff.tasks import binomial as _binomial_task

gin.external_configurable(_unet_model.UNetConfig, name="UNetConfig", module="binomial")
gin.external_configurable(_unet_model.UNet, name="UNet", module="binomial")
gin.external_configurable(_binomial_task.BinomialTask, name="BinomialTask", module="binomial")
gin.external_configurable(_tfds_io.pianoroll_density, name="pianoroll_density", module="binomial")
# --- end binomial diffusion ---


def load_trained(workdir: str, ema: bool = True, step: int | None = None) -> tuple[Task, object]:
    """(task, params) of a run: the Task rebuilt from the workdir's gin config, params of `step`
    (default latest; the EMA params when `ema` and the run kept them), replicated on this process's devices.

    The caller's own gin configuration is put back afterwards, so sampling or evaluation jobs may call
    this after parsing their gin files.
    """
    config_text = _workdir.config_path(workdir).read_text()  # through epath: the workdir may be a URL
    callers_config = gin.config_str()
    gin.clear_config()
    try:
        gin.parse_config(config_text)
        task = gin.query_parameter("train.task").scoped_configurable_fn()
    finally:
        gin.clear_config()
        gin.parse_config(callers_config)
    params, _ = _workdir.restore_params(workdir, ema=ema, step=step)
    return task, params
