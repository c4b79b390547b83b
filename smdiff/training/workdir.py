"""A train workdir (a local folder or a URL such as gs://bucket/run): its gin config files and its
checkpointed params (no gin here: the Task itself is rebuilt from the config by
`smdiff.configurables.load_trained`)."""
from __future__ import annotations

from etils import epath

from smdiff.training import sharding
from smdiff.training.checkpointing import Checkpointer
from smdiff.training.paths import run_path

CONFIG_FILE = "config.gin"  # every binding, written when the run starts
OPERATIVE_CONFIG_FILE = "operative_config.gin"  # the bindings the run used, written when it ends


def config_path(workdir: str) -> epath.Path:
    """The workdir's operative config, else its start config."""
    for name in (OPERATIVE_CONFIG_FILE, CONFIG_FILE):
        path = run_path(workdir) / name
        if path.exists():
            return path
    raise FileNotFoundError(f"{workdir} has neither {OPERATIVE_CONFIG_FILE} nor {CONFIG_FILE}: not a train workdir")


def restore_params(workdir: str, ema: bool = True, step: int | None = None) -> tuple[object, int]:
    """(params of `step`, that step): default the latest; the EMA params when `ema` and the run kept
    them; replicated on this process's devices (each process of a sampling job works on its own)."""
    checkpointer = Checkpointer(run_path(workdir) / "checkpoints")
    try:
        restored_step = checkpointer.latest_step() if step is None else step
        params = checkpointer.restore_params(sharding.replicated(sharding.local_mesh()), ema=ema, step=step)
    finally:
        checkpointer.close()
    return params, restored_step


def kept_ema(workdir: str, step: int | None = None) -> bool:
    """Whether the run's checkpoint of `step` (default: the latest) holds EMA params."""
    checkpointer = Checkpointer(run_path(workdir) / "checkpoints")
    try:
        return checkpointer.kept_ema(checkpointer.latest_step() if step is None else step)
    finally:
        checkpointer.close()


def latest_step(workdir: str) -> int | None:
    """The step of the workdir's newest checkpoint (None: none saved)."""
    checkpointer = Checkpointer(run_path(workdir) / "checkpoints")
    try:
        return checkpointer.latest_step()
    finally:
        checkpointer.close()
