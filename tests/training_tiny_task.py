"""A tiny Task on small deterministic arrays, for the training-core MECHANICS tests (sharding, resume,
NaN guard, multi-process). Those tests check equality of trajectories, not learning, so synthetic but
deterministic regression data is the right input there; real-music training runs live in the model
tests. Its loss draws dropout masks from the step's RNG so that a wrong RNG on resume changes the result.
"""
import dataclasses
import os
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

NUM_FEATURES = 4

# Every train() call jits fresh closures, so the mechanics tests would recompile the same tiny programs
# again and again; jax's persistent compilation cache turns those repeats into disk reads.
COMPILATION_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": os.path.join(tempfile.gettempdir(), f"smdiff-tests-jax-cache-{os.getuid()}"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
}


@pytest.fixture(scope="module", autouse=True)
def compilation_cache():
    """Module-wide persistent compilation cache (imported by the training tests; restored afterwards)."""
    saved = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE_ENV["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(COMPILATION_CACHE_ENV["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
    yield
    jax.config.update("jax_compilation_cache_dir", saved[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", saved[1])


def regression_arrays(num_examples: int) -> dict[str, np.ndarray]:
    """x [n, 4] on a fixed grid of sines, y [n] = x @ (1, -2, 0.5, 3) + 0.25."""
    grid = np.arange(num_examples * NUM_FEATURES, dtype=np.float32).reshape(num_examples, NUM_FEATURES)
    x = np.sin(0.37 * grid + 0.11 * grid ** 0.5).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32) + 0.25).astype(np.float32)
    return {"x": x, "y": y}


def regression_dataset(num_examples: int) -> tf.data.Dataset:
    """The arrays above as a dataset of examples, plus a string feature the pipeline must drop."""
    arrays = regression_arrays(num_examples)
    ids = np.array([f"example-{i}" for i in range(num_examples)])
    return tf.data.Dataset.from_tensor_slices({**arrays, "song_id": ids})


class TinyModel(nn.Module):
    @nn.compact
    def __call__(self, x):  # [b, 4] -> [b]
        return nn.Dense(1)(jnp.tanh(nn.Dense(8)(x)))[:, 0]


@dataclasses.dataclass(frozen=True)
class TinyRegressionTask:
    """Mean squared error with input dropout; `nan_from_step` >= 0 makes the loss NaN from that step on."""

    model: nn.Module = TinyModel()
    dropout: float = 0.25
    nan_from_step: int = -1

    def init(self, rng, batch):
        return self.model.init(rng, batch["x"])["params"]

    def loss(self, params, batch, rng, step):
        keep = jax.random.bernoulli(rng, 1.0 - self.dropout, batch["x"].shape)
        x = jnp.where(keep, batch["x"] / (1.0 - self.dropout), 0.0)
        mse = jnp.mean(jnp.square(self.model.apply({"params": params}, x) - batch["y"]))
        if self.nan_from_step >= 0:
            mse = jnp.where(step >= self.nan_from_step, jnp.nan, mse)
        return mse, {"mse": mse}

    def evaluate(self, params, batch, rng):
        del rng
        mse = jnp.mean(jnp.square(self.model.apply({"params": params}, batch["x"]) - batch["y"]))
        return {"mse": mse}


def train_tiny(workdir, num_train_steps: int, task: TinyRegressionTask = TinyRegressionTask(), **options):
    """`smdiff.training.loop.train` of the tiny task with the small options the mechanics tests share."""
    from smdiff.training import loop as train_module
    from smdiff.training.optimizer import OptimizerConfig

    kwargs = dict(optimizer=OptimizerConfig(learning_rate=0.05, decay_steps=2, decay_rate=0.9, clip_norm=1.0),
                  global_batch_size=16, num_train_steps=num_train_steps, ema_decay=0.9, seed=3,
                  log_every_steps=2, eval_every_steps=4, num_eval_batches=2, checkpoint_every_steps=2)
    kwargs.update(options)
    return train_module.train(str(workdir), task, regression_dataset(40), regression_dataset(24), **kwargs)


if __name__ == "__main__":
    # python training_tiny_task.py WORKDIR CHECKPOINT_EVERY: train "forever" until killed or preempted.
    import sys

    result = train_tiny(sys.argv[1], 1_000_000, checkpoint_every_steps=int(sys.argv[2]), log_every_steps=10,
                        eval_every_steps=1_000_000)
    print(f"stopped at step {int(result.state.step)}, preempted={result.preempted}")
