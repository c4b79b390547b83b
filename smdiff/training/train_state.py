"""The training state and the jitted, sharded train and eval steps built from a Task."""
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from smdiff.training import sharding
from smdiff.training.optimizer import ema_update
from smdiff.training.task import Batch, Metrics, Task


@flax.struct.dataclass
class TrainState:
    """Everything that evolves during training (all replicated on the mesh).

    Attributes:
      step: int32 scalar, the number of optimizer steps taken.
      params: the task's parameters.
      ema_params: exponential moving average of `params`, or None when EMA is off.
      opt_state: the optax state.
      rng: the run's base key; step s uses `fold_in(rng, s)`, so a resumed run draws the same keys.
    """

    step: jax.Array
    params: object
    ema_params: object
    opt_state: object
    rng: jax.Array


def create_train_state(task: Task, tx: optax.GradientTransformation, rng: jax.Array, example_batch: Batch,
                       mesh: Mesh, use_ema: bool) -> TrainState:
    """Initialises params from `example_batch` (global arrays) directly into replicated shardings."""
    init_rng, run_rng = jax.random.split(rng)

    def init(batch):
        params = task.init(init_rng, batch)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          ema_params=params if use_ema else None,
                          opt_state=tx.init(params), rng=run_rng)

    return jax.jit(init, out_shardings=sharding.replicated(mesh))(example_batch)


def _microbatches(batch: Batch, grad_accum_steps: int, mesh: Mesh) -> Batch:
    """[B, ...] -> [grad_accum_steps, B / grad_accum_steps, ...], microbatch i = rows i, i + A, i + 2A, ...

    Strided rather than contiguous so that every microbatch is spread over the whole `data` axis (a
    device's contiguous shard of the batch holds rows of every microbatch): no data moves between devices.
    """
    num_devices = mesh.devices.size
    size = len(next(iter(batch.values())))
    if size % grad_accum_steps or (size // grad_accum_steps) % num_devices:
        raise ValueError(f"global batch {size} must split into {grad_accum_steps} microbatches that each "
                         f"divide over the {num_devices} devices (a multiple of {grad_accum_steps * num_devices})")
    spread = NamedSharding(mesh, PartitionSpec(None, sharding.DATA_AXIS))

    def split(x):
        micro = x.reshape(size // grad_accum_steps, grad_accum_steps, *x.shape[1:]).swapaxes(0, 1)
        return jax.lax.with_sharding_constraint(micro, spread)

    return jax.tree.map(split, batch)


def _loss_and_grads(task: Task, params, batch: Batch, rng: jax.Array, step: jax.Array, grad_accum_steps: int,
                    mesh: Mesh):
    """((loss, metrics), grads) of the batch, summed over microbatches in a scan when grad_accum_steps > 1.

    The task's loss and metrics are batch means, so the mean over equal microbatches is the whole batch's:
    the same update as one big batch (exactly, up to float summation order, for a loss that draws no
    random numbers; microbatch i draws from fold_in(rng, i), so random draws differ from the big batch's).
    """
    grad_fn = jax.value_and_grad(task.loss, has_aux=True)
    if grad_accum_steps == 1:
        return grad_fn(params, batch, rng, step)
    microbatches = _microbatches(batch, grad_accum_steps, mesh)
    first = jax.tree.map(lambda x: x[0], microbatches)
    totals = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(grad_fn, params, first, rng, step))

    def accumulate(totals, index_and_microbatch):
        index, microbatch = index_and_microbatch
        results = grad_fn(params, microbatch, jax.random.fold_in(rng, index), step)
        return jax.tree.map(jnp.add, totals, results), None

    totals, _ = jax.lax.scan(accumulate, totals, (jnp.arange(grad_accum_steps), microbatches))
    return jax.tree.map(lambda total: total / grad_accum_steps, totals)


def make_train_step(task: Task, tx: optax.GradientTransformation, schedule: optax.Schedule, ema_decay: float,
                    mesh: Mesh, grad_accum_steps: int = 1) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """A jitted step: state replicated, batch sharded on `data`, returns (new state, metrics).

    Metrics hold the task's metrics plus `loss`, `grad_norm` (before clipping), `learning_rate` and
    `finite` (1.0 when loss and gradients are finite). A non-finite step returns the old state
    unchanged, so a bad state never reaches a checkpoint even before the loop notices.

    `grad_accum_steps` > 1 computes the gradient of the global batch as the mean over that many
    microbatches, one after another (t5x's gradient accumulation), so a global batch larger than the
    devices' memory allows, or one the device count does not divide, runs as smaller passes; the
    global batch must be a multiple of grad_accum_steps x the number of devices.
    """
    if grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
    replicated = sharding.replicated(mesh)

    def step(state: TrainState, batch: Batch):
        rng = jax.random.fold_in(state.rng, state.step)
        (loss, metrics), grads = _loss_and_grads(task, state.params, batch, rng, state.step, grad_accum_steps, mesh)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema_params = None if state.ema_params is None else ema_update(state.ema_params, params, ema_decay, state.step)
        new_state = state.replace(step=state.step + 1, params=params, ema_params=ema_params, opt_state=opt_state)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        metrics = {**metrics, "loss": loss, "grad_norm": grad_norm,
                   "learning_rate": schedule(state.step), "finite": finite.astype(jnp.float32)}
        return new_state, metrics

    return jax.jit(step, in_shardings=(replicated, sharding.batch_sharding(mesh)),
                   out_shardings=(replicated, replicated), donate_argnums=0)


def make_eval_step(task: Task, mesh: Mesh) -> Callable[[object, Batch, jax.Array], Metrics]:
    """A jitted `task.evaluate(params, batch, rng)` with replicated params and a sharded batch."""
    replicated = sharding.replicated(mesh)
    return jax.jit(task.evaluate, in_shardings=(replicated, sharding.batch_sharding(mesh), replicated),
                   out_shardings=replicated)
