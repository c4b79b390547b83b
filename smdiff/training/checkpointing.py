"""Orbax checkpoints of the whole run: TrainState (params, EMA, optimizer state, step, RNG) + data position.

Each checkpoint is a step directory with two items: `state` (the TrainState's arrays) and `data`
(JSON: how many training batches the input pipeline has consumed, and its seed). Saving is
asynchronous; `wait()` blocks until the last save is on disk. Retention: the newest `max_to_keep`
checkpoints, plus every step that is a multiple of `keep_period` (when set). The directory may be a
URL (gs://...; see smdiff/training/paths.py).

A checkpoint that cannot be read back (a damaged array file) raises `DamagedCheckpointError` naming it;
`set_aside` moves it out of the way (into `<directory>-set-aside/`, nothing is deleted) so that the run
resumes from an earlier one and its next saves are not blocked by the damaged step.
"""
import os
import sys

import flax.serialization
import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from smdiff.training.paths import run_path
from smdiff.training.train_state import TrainState


class DamagedCheckpointError(RuntimeError):
    """A checkpoint's files are there (it was committed) but its arrays cannot be read back."""

    def __init__(self, directory, step: int, cause: Exception):
        reason = str(cause).split("\n", 1)[0][:300]
        super().__init__(f"checkpoint step {step} in {directory} cannot be read back ({type(cause).__name__}: "
                         f"{reason})")
        self.step = step


class Checkpointer:
    """Saves and restores a run's TrainState and data position in `directory`."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3, keep_period: int | None = None,
                 asynchronous: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, keep_period=keep_period or None, create=True,
            enable_async_checkpointing=asynchronous)
        self._directory = run_path(directory)
        self._manager = ocp.CheckpointManager(
            self._directory, options=options,
            item_handlers={"state": ocp.PyTreeCheckpointHandler(), "data": ocp.JsonCheckpointHandler()})

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, state: TrainState, data_position: dict[str, int]) -> None:
        """Starts saving (asynchronously) under the state's step; an existing step is left as it is."""
        step = int(jax.device_get(state.step))
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.PyTreeSave(flax.serialization.to_state_dict(state)),
            data=ocp.args.JsonSave(data_position)), force=True)

    def restore(self, like: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, int]]:
        """Restores `step` (default: latest) with the shapes, dtypes and shardings of `like`.

        Raises:
          DamagedCheckpointError: the step's arrays cannot be read (it names the checkpoint).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self._manager.directory}")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                                flax.serialization.to_state_dict(like))
        _drop_late_callbacks_of_abandoned_reads()  # before: they may arrive before the error is raised
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=_restore_args(abstract), data=ocp.args.JsonRestore()))
        except (ValueError, OSError) as error:  # TensorStore's read errors (OUT_OF_RANGE, DATA_LOSS, ...)
            raise DamagedCheckpointError(self._manager.directory, step, error) from error
        return flax.serialization.from_state_dict(like, restored["state"]), dict(restored["data"])

    def set_aside(self, step: int) -> None:
        """Moves checkpoint `step` into `<directory>-set-aside/<step>` (process 0; all processes wait)."""
        if jax.process_index() == 0:
            target = self._directory.parent / f"{self._directory.name}-set-aside"
            target.mkdir(parents=True, exist_ok=True)
            (self._directory / str(step)).rename(target / str(step))
        multihost_utils.sync_global_devices(f"smdiff checkpoint {step} set aside")
        self._manager.reload()

    def kept_ema(self, step: int) -> bool:
        """Whether the checkpoint of `step` holds EMA params (the run trained with ema_decay > 0)."""
        return self._manager.item_metadata(step)["state"].get("ema_params") is not None

    def restore_params(self, sharding: jax.sharding.Sharding, ema: bool = True, step: int | None = None):
        """Only the parameters of `step` (default: latest), placed with `sharding`: the EMA params when
        `ema` and the run kept them, else the raw params. Needs no Task or optimizer."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self._manager.directory}")
        saved = self._manager.item_metadata(step)["state"]
        key = "ema_params" if ema and self.kept_ema(step) else "params"
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), saved[key])
        _drop_late_callbacks_of_abandoned_reads()
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=_restore_args({key: abstract}, partial=True)))
        return restored["state"][key]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def _drop_late_callbacks_of_abandoned_reads() -> None:
    """Keeps a failed restore's error the only thing printed (installed before every restore).

    Orbax closes its event loop as soon as one array read fails, while TensorStore still completes the
    restore's other reads; each completion then calls into the closed loop and its RuntimeError("Event
    loop is closed") reaches `sys.unraisablehook`, a traceback per array after the clear error. This
    wraps the hook (once) to drop exactly those; every other unraisable exception still goes through.
    """
    previous = sys.unraisablehook
    if getattr(previous, "drops_abandoned_reads", False):
        return

    def hook(unraisable):
        if not (unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    hook.drops_abandoned_reads = True
    sys.unraisablehook = hook


def _restore_args(abstract, partial: bool = False) -> ocp.args.PyTreeRestore:
    """Restore `abstract`'s tree of ShapeDtypeStructs with their shardings (a subtree when `partial`)."""
    return ocp.args.PyTreeRestore(item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                                  partial_restore=partial)
