"""The Task protocol: everything the one train loop needs to know about a model.

A Task is a plain Python object (usually a frozen dataclass holding the flax module as `model` and its
hyper-parameters). The loop never looks inside it; it only calls the three methods below. Batches are
dicts of arrays whose leading dimension is the global batch (sharded over the mesh's `data` axis).

Because `loss` returns a MEAN over the batch, the gradient of a sharded step equals the gradient of the
same step on one device, which is what lets the loop run unchanged on 1 CPU or a TPU pod.
"""
from typing import Any, Protocol, runtime_checkable

import jax

Params = Any  # a pytree of arrays
Batch = dict[str, jax.Array]  # every value has the global batch as its leading dim
Metrics = dict[str, jax.Array]  # flat: name -> scalar batch mean


@runtime_checkable
class Task(Protocol):
    """What a model must offer to be trained by `smdiff.training.loop.train`.

    `model` is the task's flax module (the loop does not use it, `load_trained` callers do).
    """

    model: Any

    def init(self, rng: jax.Array, batch: Batch) -> Params:
        """Initial parameters for a batch shaped like the training batches."""
        ...

    def loss(self, params: Params, batch: Batch, rng: jax.Array, step: jax.Array) -> tuple[jax.Array, Metrics]:
        """(scalar loss, metrics), both means over the batch; pure and jittable. `step` is an int32 scalar."""
        ...

    def evaluate(self, params: Params, batch: Batch, rng: jax.Array) -> Metrics:
        """Flat dict of scalar batch means on a held-out batch; pure and jittable."""
        ...
