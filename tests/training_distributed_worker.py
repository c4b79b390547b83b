"""One process of the two-process `jax.distributed` test (run by tests/test_training_distributed.py).

usage: python training_distributed_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR
Trains the tiny Task 3 steps on a mesh over both processes' CPU devices and saves its final params
to WORKDIR/params-<PROCESS_ID>.npz.
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from smdiff import train as train_module  # noqa: E402
from smdiff.training.optimizer import OptimizerConfig  # noqa: E402
from training_tiny_task import TinyRegressionTask, regression_dataset  # noqa: E402


def main(process_id: int, num_processes: int, port: int, workdir: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=num_processes,
                               process_id=process_id)
    assert jax.process_count() == num_processes and len(jax.devices()) == 2 * num_processes
    result = train_module.train(
        workdir, TinyRegressionTask(), regression_dataset(40), regression_dataset(16),
        optimizer=OptimizerConfig(learning_rate=0.05), global_batch_size=8, num_train_steps=3, ema_decay=0.9,
        seed=5, shuffle_buffer=8, log_every_steps=1, eval_every_steps=3, num_eval_batches=1,
        checkpoint_every_steps=3)
    leaves = {jax.tree_util.keystr(path): np.asarray(jax.device_get(leaf))
              for path, leaf in jax.tree_util.tree_leaves_with_path(result.state.params)}
    np.savez(os.path.join(workdir, f"params-{process_id}.npz"), step=int(result.state.step), **leaves)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
