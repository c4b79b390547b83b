"""The one train loop of every smdiff Task (`smdiff train` configures it with gin; see smdiff/train.py).

The workdir (a local folder or a gs:// URL) receives `checkpoints/`, `metrics.jsonl` and `tensorboard/`
(the train job adds the configs, smdiff/train.py). Rerunning on the same workdir resumes from the latest
checkpoint on the same trajectory, on any number of processes.
"""
import dataclasses

import jax
from absl import logging
from tqdm import tqdm

from smdiff.models.params import count_params
from smdiff.training import input_pipeline, sharding
from smdiff.training.checkpointing import Checkpointer, DamagedCheckpointError
from smdiff.training.input_pipeline import DataSource
from smdiff.training.loop_helpers import MetricWindow, NonFiniteStepError, add_metrics, device_prefetch
from smdiff.training.optimizer import OptimizerConfig
from smdiff.training.paths import run_path
from smdiff.training.preemption import PreemptionWatch
from smdiff.training.task import Metrics, Task
from smdiff.training.throughput import ThroughputMeter, compiled_flops, peak_flops
from smdiff.training.train_state import TrainState, create_train_state, make_eval_step, make_train_step
from smdiff.training.writers import create_writer


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss or gradient; the last good checkpoint is left intact."""


@dataclasses.dataclass
class TrainResult:
    """What `train` hands back: the final state, the last metrics written, and whether a preemption
    notice (SIGTERM) stopped the run early (after saving its state)."""

    state: TrainState
    train_metrics: dict[str, float]
    eval_metrics: dict[str, float]
    preempted: bool = False


def train(workdir: str, task: Task, train_data: DataSource, eval_data: DataSource | None = None, *,
          optimizer: OptimizerConfig = OptimizerConfig(), global_batch_size: int = 64,
          num_train_steps: int = 1000, ema_decay: float = 0.0, seed: int = 0,
          log_every_steps: int = 100, eval_every_steps: int = 1000, num_eval_batches: int = 10,
          checkpoint_every_steps: int = 1000, keep_checkpoints: int = 3, keep_every_steps: int | None = None,
          async_checkpointing: bool = True, wandb_project: str | None = None, wandb_group: str | None = None,
          wandb_tags: tuple[str, ...] = (), grad_accum_steps: int = 1, peak_tflops: float = 0.0,
          restore_step: int | None = None, hparams: dict | None = None) -> TrainResult:
    """Trains `task` for `num_train_steps` optimizer steps in total, resuming from `workdir` if it holds a checkpoint.

    Args:
      workdir: run directory (checkpoints, metrics).
      task: the model's Task (see smdiff/training/task.py).
      train_data, eval_data: a TfdsSource (or a small finite tf.data.Dataset of dicts); each process reads
        its rows of every global batch (smdiff/training/input_pipeline.py).
      optimizer: Adam, learning-rate schedule and clipping.
      global_batch_size: examples per step over all devices (must divide by the device count).
      num_train_steps: total steps of the run (a resumed run continues up to it).
      ema_decay: decay of the parameter EMA, warmed up over the first steps (`optimizer.ema_decay_at`); 0 disables it.
      seed: fixes initialisation, per-step RNG and the data order (the same on any topology).
      log_every_steps: train metrics (averaged since the last write), steps/s and examples/s.
      eval_every_steps, num_eval_batches: evaluation on the same `num_eval_batches` batches each time
        (also with the EMA params under `eval_ema/` when EMA is on).
      checkpoint_every_steps, keep_checkpoints, keep_every_steps: save period and retention
        (newest N, plus every multiple of keep_every_steps). The last step is always saved.
      async_checkpointing: save in the background.
      wandb_project: log to W&B too (process 0; WANDB_MODE=offline works without network).
      wandb_group, wandb_tags: the W&B run's group and tags (launch/sweep.sh: the sweep, the bindings).
      grad_accum_steps: microbatches per step (gradient accumulation, the same update as the whole
        global batch); the global batch must be a multiple of grad_accum_steps x the device count.
      peak_tflops: one device's peak TFLOP/s for the logged MFU (`train/mfu`); 0 = the table in
        smdiff/training/throughput.py (no MFU for devices it does not know, e.g. CPUs).
      restore_step: resume from this checkpoint instead of the latest (later ones are set aside into
        `checkpoints-set-aside/`). Without it, a latest checkpoint that cannot be read is set aside with
        a warning and the run resumes from the newest one that can.
      hparams: the run's settings (main: every gin binding and the job flags), written as TensorBoard
        hparams, to metrics.jsonl and as the W&B run config.

    A SIGTERM (the usual preemption notice) makes the run save its current step and return early with
    `preempted=True`; rerunning resumes it.

    The loop does not wait for the device between steps: the next global batch is put on the devices
    (with the sharding the step expects) while the current step runs, and the metrics and the NaN guard
    are summed on device (smdiff/training/loop_helpers.py). The host waits only at the steps that log,
    evaluate or save a checkpoint, and checks there first that every step since the last check was
    finite. So a NaN/Inf is caught at the first such step after it (within min(log_every_steps,
    eval_every_steps, checkpoint_every_steps) steps), never after a checkpoint of it: a non-finite step
    leaves the state as it was (the step discards its own update), the steps up to the check are thrown
    away, nothing is logged, evaluated or saved for them, and the run raises NonFiniteLossError naming
    the first non-finite step and the last good checkpoint.

    Raises:
      NonFiniteLossError: a step gave a NaN/Inf loss or gradient (nothing from that step on is saved).
    """
    periods = dict(global_batch_size=global_batch_size, log_every_steps=log_every_steps,
                   eval_every_steps=eval_every_steps, num_eval_batches=num_eval_batches,
                   checkpoint_every_steps=checkpoint_every_steps, keep_checkpoints=keep_checkpoints)
    if bad := {name: value for name, value in periods.items() if value < 1}:
        raise ValueError(f"these train options must be >= 1: {bad}")
    if num_train_steps < 0 or not 0 <= ema_decay < 1:
        raise ValueError(f"need num_train_steps >= 0 and 0 <= ema_decay < 1, got {num_train_steps}, {ema_decay}")
    run_path(workdir).mkdir(parents=True, exist_ok=True)
    mesh = sharding.make_mesh()
    sharding.per_process_batch_size(global_batch_size, mesh)  # errors if the batch does not split over the devices
    tx = optimizer.make()
    checkpointer = Checkpointer(str(run_path(workdir) / "checkpoints"), max_to_keep=keep_checkpoints,
                                keep_period=keep_every_steps, asynchronous=async_checkpointing)
    train_examples = input_pipeline.random_access(train_data)
    eval_examples = None if eval_data is None else input_pipeline.random_access(eval_data)
    first_batch = next(input_pipeline.train_batches(train_examples, global_batch_size, seed))  # for the shapes
    state = create_train_state(task, tx, jax.random.PRNGKey(seed), sharding.global_batch(first_batch, mesh),
                               mesh, use_ema=ema_decay > 0)
    data_position = {"batches_consumed": 0, "seed": seed, "global_batch_size": global_batch_size,
                     "num_examples": len(train_examples)}
    start_step = 0
    if checkpointer.all_steps() or restore_step is not None:
        state = _resume(checkpointer, state, data_position, restore_step)
        start_step = int(jax.device_get(state.step))
        logging.info("resumed from the checkpoint at step %d in %s", start_step, workdir)
    batches = device_prefetch(input_pipeline.train_batches(train_examples, global_batch_size, seed, start_step),
                              mesh)  # double buffering: the next batch is on the devices during a step
    param_count = count_params(state.params)
    logging.info("%d parameters; global batch %d on %d devices in %d process(es)", param_count,
                 global_batch_size, mesh.devices.size, jax.process_count())

    hparams = {"global_batch_size": global_batch_size, "num_train_steps": num_train_steps, "seed": seed,
               **(hparams or {})}
    writer = create_writer(workdir, wandb_project, config=hparams, group=wandb_group, tags=tuple(wandb_tags))
    writer.write_hparams(hparams)
    # Compiled here, not at the first call, so that XLA's FLOP count of the step gives the logged MFU.
    train_step = make_train_step(task, tx, optimizer.schedule(), ema_decay, mesh, grad_accum_steps).lower(
        state, sharding.global_batch(first_batch, mesh)).compile()
    eval_step = make_eval_step(task, mesh)
    train_metrics: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    window = MetricWindow()
    throughput = ThroughputMeter(global_batch_size, compiled_flops(train_step),
                                 peak_flops(jax.devices()[0].device_kind, peak_tflops))
    preemption = PreemptionWatch()
    preempted = False
    progress = tqdm(total=num_train_steps, initial=start_step, desc="train", unit=" steps",
                    disable=jax.process_index() != 0)
    try:
        for step in range(start_step, num_train_steps):
            state, metrics = train_step(state, next(batches))
            window.add(step, metrics)
            if step == start_step:  # the meter's clock starts when the first step has run, as in the bare step
                jax.block_until_ready(metrics)
            throughput.step_done()
            done = step + 1
            log = done % log_every_steps == 0 or done == num_train_steps
            evaluate = eval_data is not None and (done % eval_every_steps == 0 or done == num_train_steps)
            preempted = preemption.reached(done)
            save = done % checkpoint_every_steps == 0 or done == num_train_steps or preempted
            if log or evaluate or save:  # the host waits here only; nothing is written past a non-finite step
                try:
                    train_means = window.fetch() if log else window.check_finite()
                except NonFiniteStepError as error:
                    checkpointer.wait()  # the last good checkpoint is complete before we stop
                    raise _non_finite_error(error, done, checkpointer.latest_step(), workdir) from error
            if log:
                train_metrics = {f"train/{name}": value for name, value in train_means.items()}
                train_metrics.update({f"train/{name}": rate for name, rate in throughput.report().items()})
                writer.write_scalars(done, train_metrics)
                progress.set_postfix(loss=f"{train_metrics['train/loss']:.4g}", refresh=False)
            if evaluate:
                eval_metrics = _evaluate(eval_step, state, eval_examples, global_batch_size, num_eval_batches, mesh, seed)
                writer.write_scalars(done, eval_metrics)
                throughput.restart()
            progress.update(1)
            if save:
                checkpointer.save(state, {**data_position, "batches_consumed": done})
                writer.flush()  # the metrics up to a checkpoint are on disk (or in the bucket) with it
                throughput.restart()
            if preempted:
                logging.warning("preemption notice: saved step %d in %s and stopped; rerun to resume", done, workdir)
                break
        checkpointer.wait()
    finally:
        progress.close()
        preemption.close()
        writer.close()
        checkpointer.close()
    return TrainResult(state=state, train_metrics=train_metrics, eval_metrics=eval_metrics, preempted=preempted)


def _non_finite_error(error: NonFiniteStepError, checked_at: int, last_checkpoint: int | None,
                      workdir: str) -> NonFiniteLossError:
    saved = "none saved yet" if last_checkpoint is None else f"step {last_checkpoint} in {workdir}/checkpoints"
    return NonFiniteLossError(
        f"non-finite loss ({error.loss}) or gradient norm ({error.grad_norm}) in the update at step {error.step} "
        f"(found at the check after step {checked_at}); training stopped, nothing from that step on was saved. "
        f"Last good checkpoint: {saved}")


def _resume(checkpointer: Checkpointer, fresh_state: TrainState, data_position: dict,
            restore_step: int | None) -> TrainState:
    """The state of `restore_step` (default: the newest checkpoint that can be read), after checking
    that its data position matches this run's; later checkpoints are set aside.

    Exact resumption needs the same seed, global batch and split size (they fix the data order; the
    process count does not), and the number of consumed batches must equal the step.
    """
    steps = sorted(checkpointer.all_steps(), reverse=True)
    if restore_step is not None:
        if restore_step not in steps:
            raise FileNotFoundError(f"no checkpoint of step {restore_step}; the checkpoints are {sorted(steps)}")
        for step in steps[:steps.index(restore_step)]:
            logging.warning("restore_step=%d: setting the later checkpoint %d aside", restore_step, step)
            checkpointer.set_aside(step)
        state, saved = checkpointer.restore(fresh_state, restore_step)
    else:
        state, saved, damaged = _newest_readable(checkpointer, fresh_state, steps)
        for error in damaged:
            logging.warning("%s; set aside, resuming from step %d", error, int(jax.device_get(state.step)))
            checkpointer.set_aside(error.step)
    if saved["batches_consumed"] != int(jax.device_get(state.step)):
        raise ValueError(f"checkpoint at step {int(state.step)} records {saved['batches_consumed']} consumed batches")
    for key in ("seed", "global_batch_size", "num_examples"):
        if saved.get(key, data_position[key]) != data_position[key]:
            raise ValueError(f"the checkpoint was trained with {key}={saved[key]} but this run has {key}="
                             f"{data_position[key]}; resuming would change the data order. Use a new workdir.")
    return state


def _newest_readable(checkpointer: Checkpointer, fresh_state: TrainState, steps: list[int]):
    """(state, data position, errors of the newer damaged checkpoints) of the newest checkpoint that
    can be read; nothing is moved when none can (then the first error is raised)."""
    damaged: list[DamagedCheckpointError] = []
    for step in steps:
        try:
            state, saved = checkpointer.restore(fresh_state, step)
            return state, saved, damaged
        except DamagedCheckpointError as error:
            damaged.append(error)
    raise damaged[0]


def _evaluate(eval_step, state: TrainState, eval_examples, global_batch_size: int, num_batches: int,
              mesh, seed: int) -> dict[str, float]:
    """Means over the fixed evaluation batches, of the params and (under `eval_ema/`) of the EMA params.
    The sums stay on device; the host fetches them once, at the end."""
    variants = {"eval": state.params}
    if state.ema_params is not None:
        variants["eval_ema"] = state.ema_params
    sums: dict[str, Metrics] = {}
    rng = jax.random.PRNGKey(seed + 1)  # the same keys at every evaluation
    count = 0
    for index, batch in enumerate(input_pipeline.eval_batches(eval_examples, global_batch_size, num_batches)):
        batch = sharding.global_batch(batch, mesh)
        for prefix, params in variants.items():
            metrics = eval_step(params, batch, jax.random.fold_in(rng, index))
            sums[prefix] = metrics if prefix not in sums else add_metrics(sums[prefix], metrics)
        count += 1
    return {f"{prefix}/{name}": float(value) / count
            for prefix, metrics in jax.device_get(sums).items() for name, value in metrics.items()}
