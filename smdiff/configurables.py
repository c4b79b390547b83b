"""Everything gin may configure, registered in one place (t5x style: gin stays at the edges).

Entry points import this module before parsing gin files; library modules never import gin. Each
section below registers one part of smdiff under a gin module name, so gin files read
`melody_vae.MelodyVAE.hidden_size = 256` and the like.
"""
import gin

# --- training core (smdiff/training, smdiff/train.py) -------------------------------------------------
# Gin files bind `train.task = @SomeTask()`, `train.train_data = @train/TfdsSource()`,
# `train.optimizer = @OptimizerConfig()` and the run options of `train` (see gin/runs/).
from smdiff import train as _train_module
from smdiff.training import input_pipeline as _input_pipeline
from smdiff.training import optimizer as _optimizer

train = gin.external_configurable(_train_module.train, name="train", module="smdiff", denylist=["workdir"])
gin.external_configurable(_optimizer.OptimizerConfig, name="OptimizerConfig", module="training")
gin.external_configurable(_input_pipeline.TfdsSource, name="TfdsSource", module="training")
# --- end training core ---

# --- TransformerMDN baseline (smdiff/models/transformer_mdn.py, smdiff/tasks/mdn.py) -----------------------
# Gin files (gin/models/transformer_mdn_*.gin) bind `train.task = @mdn.MDNTask()`, its `model` to
# `@mdn.TransformerMDN()` and that model's `config` to `@mdn.TransformerMDNConfig()`.
from smdiff.models import transformer_mdn as _transformer_mdn_model
from smdiff.tasks import mdn as _mdn_task

gin.external_configurable(_transformer_mdn_model.TransformerMDNConfig, name="TransformerMDNConfig", module="mdn")
gin.external_configurable(_transformer_mdn_model.TransformerMDN, name="TransformerMDN", module="mdn")
gin.external_configurable(_mdn_task.MDNTask, name="MDNTask", module="mdn")
# --- end TransformerMDN ---
