"""The device mesh and how arrays are laid out on it (one parallelism path: jit over a Mesh).

The mesh has a `data` axis over every device of every process; parameters are replicated and batches
are split on their leading dim. An `fsdp` axis would be a second mesh axis that parameter shardings
name; nothing here assumes there is only one axis beyond `batch_sharding` using `data`.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh with a `data` axis over `devices` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


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
