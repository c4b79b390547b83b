"""The training state and the jitted, sharded train and eval steps built from a Task."""
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

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


def make_train_step(task: Task, tx: optax.GradientTransformation, schedule: optax.Schedule, ema_decay: float,
                    mesh: Mesh) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """A jitted step: state replicated, batch sharded on `data`, returns (new state, metrics).

    Metrics hold the task's metrics plus `loss`, `grad_norm` (before clipping), `learning_rate` and
    `finite` (1.0 when loss and gradients are finite). A non-finite step returns the old state
    unchanged, so a bad state never reaches a checkpoint even before the loop notices.
    """
    replicated = sharding.replicated(mesh)

    def step(state: TrainState, batch: Batch):
        rng = jax.random.fold_in(state.rng, state.step)
        grad_fn = jax.value_and_grad(task.loss, has_aux=True)
        (loss, metrics), grads = grad_fn(state.params, batch, rng, state.step)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema_params = None if state.ema_params is None else ema_update(state.ema_params, params, ema_decay)
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
