"""The device mesh and how arrays are laid out on it (one parallelism path: jit over a Mesh).

The mesh has a `data` axis over every device of every process; parameters are replicated and batches
are split on their leading dim. An `fsdp` axis would be a second mesh axis that parameter shardings
name; nothing here assumes there is only one axis beyond `batch_sharding` using `data`.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh with a `data` axis over `devices` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def local_mesh() -> Mesh:
    """A 1-d `data` mesh over this process's devices only: for work each process does on its own (a
    sampling chunk), where a mesh over every process's devices would make every process run each call."""
    return make_mesh(jax.local_devices())


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimizer state, RNG, step)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading dim split over the `data` axis, the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def per_process_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """How many examples this process feeds per step; errors if the batch does not split evenly."""
    num_devices = mesh.devices.size
    if global_batch_size % num_devices:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the {num_devices} devices of the "
            f"mesh; choose a multiple of {num_devices}")
    return global_batch_size // jax.process_count()


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble each process's slice [local_b, ...] into global arrays [global_b, ...] on the mesh."""
    sharding = batch_sharding(mesh)
    return {name: jax.make_array_from_process_local_data(sharding, value) for name, value in local_batch.items()}


class ShardedApply:
    """`fn(*replicated_args, *batched_args)` jitted over the `data` axis of a mesh, for any batch size n.

    The first `num_replicated` arguments (params, RNG keys, scalars) are replicated; the others are
    batches [n, ...] that are padded to a multiple of the device count (by repeating their first row),
    split over the devices, and every output is cut back to its first n rows along its batch axis.
    `out_batch_axes`: the batch axis of each output (an int for all of them, or a tuple per output; None
    for an output that is None or not batched). The default mesh is this process's devices
    (`local_mesh`): the batch is this process's own, as in sampling where each process makes its chunks.
    """

    def __init__(self, fn, num_replicated: int, out_batch_axes: int | tuple[int | None, ...] = 0,
                 mesh: Mesh | None = None):
        self.mesh = local_mesh() if mesh is None else mesh
        self._num_replicated = num_replicated
        self._out_batch_axes = out_batch_axes
        self._fn = fn
        self._jitted = None

    def replicate(self, tree):
        """`tree` placed whole on every device (do it once for params)."""
        return jax.device_put(tree, replicated(self.mesh))

    def padded_size(self, n: int) -> int:
        """n rounded up to a multiple of the device count."""
        num_devices = self.mesh.devices.size
        return -(-n // num_devices) * num_devices

    def _out_sharding(self, axis: int | None):
        if axis is None:
            return None
        return NamedSharding(self.mesh, PartitionSpec(*([None] * axis), DATA_AXIS))

    def __call__(self, *args):
        fixed, batched = args[:self._num_replicated], args[self._num_replicated:]
        n = len(batched[0])
        padded = self.padded_size(n)
        batched = [_pad_rows(x, padded) for x in batched]
        if self._jitted is None:
            axes = self._out_batch_axes
            out = (self._out_sharding(axes) if isinstance(axes, int)
                   else tuple(self._out_sharding(axis) for axis in axes))
            self._jitted = jax.jit(self._fn, in_shardings=(*[replicated(self.mesh)] * len(fixed),
                                                           *[batch_sharding(self.mesh)] * len(batched)),
                                   out_shardings=out)
        outputs = self._jitted(*fixed, *batched)
        if isinstance(self._out_batch_axes, int):
            return jax.tree.map(lambda x: _take_rows(x, n, self._out_batch_axes), outputs)
        return tuple(None if output is None or axis is None else _take_rows(output, n, axis)
                     for output, axis in zip(outputs, self._out_batch_axes))


def _pad_rows(x, padded: int):
    """x [n, ...] -> [padded, ...], the extra rows copies of the first (dropped after the call)."""
    x = jnp.asarray(x)
    extra = padded - len(x)
    return jnp.concatenate([x, jnp.repeat(x[:1], extra, axis=0)]) if extra else x


def _take_rows(x: jax.Array, n: int, axis: int) -> jax.Array:
    return jax.lax.slice_in_dim(x, 0, n, axis=axis)
