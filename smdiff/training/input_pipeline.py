"""Training and evaluation batches from TFDS (or any finite tf.data.Dataset), one slice per process.

The data position is simply the number of training batches consumed so far (= the train step), and
resuming is exact: epoch e is the process's slice shuffled with a seed derived from (seed, e), so the
order of every epoch is a pure function of the seed. A run resumed at batch n starts at epoch
n * batch // epoch_size and skips the remainder within that epoch. Skipping costs reading at most one
epoch of this process's slice (no buffers are checkpointed, and nothing needs to fit in memory beyond
the shuffle buffer).
"""
import dataclasses
import importlib
from typing import Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

NumpyBatch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """One split of a prepared TFDS dataset.

    Attributes:
      name: builder name with optional config, e.g. 'melody_chunks/embedded'.
      split: 'train', 'validation', 'test' or any TFDS split expression.
      data_dir: where the prepared dataset lives (None = TFDS default).
    """

    name: str
    split: str = "train"
    data_dir: str | None = None

    def load_process_slice(self) -> tf.data.Dataset:
        """This process's even share of the split (`tfds.split_for_jax_process`), in file order."""
        _register_smdiff_builder(self.name.split("/")[0])
        builder = tfds.builder(self.name, data_dir=self.data_dir)
        split = tfds.split_for_jax_process(self.split)
        # No TFDS auto-cache: evaluation reads a prefix of the split, which would throw a half-built
        # in-memory cache away (with a warning) at every evaluation; the OS page cache serves re-reads.
        return builder.as_dataset(split=split, shuffle_files=False,
                                  read_config=tfds.ReadConfig(try_autocache=False))


def _register_smdiff_builder(dataset_name: str) -> None:
    """smdiff's builders live in `tfds_builders.<name>` and register themselves on import; other names
    are left to TFDS (its catalog, or a prepared dataset found in data_dir)."""
    try:
        importlib.import_module(f"tfds_builders.{dataset_name}")
    except ModuleNotFoundError as error:
        if error.name not in ("tfds_builders", f"tfds_builders.{dataset_name}"):
            raise


DataSource = TfdsSource | tf.data.Dataset


def process_slice(source: DataSource) -> tf.data.Dataset:
    """This process's examples, numeric features only (string features such as `song_id` are dropped,
    since they cannot become device arrays)."""
    if isinstance(source, TfdsSource):
        dataset = source.load_process_slice()
    else:
        dataset = source.shard(jax.process_count(), jax.process_index())
    if not isinstance(dataset.element_spec, dict):
        raise ValueError(f"training data must be a dataset of dicts (feature name -> tensor), got elements "
                         f"{dataset.element_spec}")
    numeric = [name for name, spec in dataset.element_spec.items() if spec.dtype != tf.string]
    if not numeric:
        raise ValueError(f"dataset {source} has no numeric features to train on: {dataset.element_spec}")
    return dataset.map(lambda example: {name: example[name] for name in numeric})


def count_examples(dataset: tf.data.Dataset) -> int:
    """Known cardinality, or one counting pass when tf.data cannot tell (e.g. after a filter)."""
    size = int(dataset.cardinality())
    if size == tf.data.INFINITE_CARDINALITY:
        raise ValueError("the dataset is infinite: give the finite split, the pipeline repeats it itself")
    if size == tf.data.UNKNOWN_CARDINALITY:
        size = int(dataset.reduce(np.int64(0), lambda count, _: count + 1))
    return size


def train_batches(source: DataSource, batch_size: int, seed: int, shuffle_buffer: int = 10_000,
                  start_batch: int = 0) -> Iterator[NumpyBatch]:
    """Endless batches [batch_size, ...] of this process's slice, starting at batch `start_batch`.

    Args:
      source: the split to read.
      batch_size: examples per batch for THIS process (global batch / process count).
      seed: fixes every epoch's order.
      shuffle_buffer: tf.data shuffle buffer (0 = no shuffling; >= epoch size = a full shuffle).
      start_batch: batches already consumed (the checkpointed data position).
    """
    dataset = process_slice(source)
    epoch_size = count_examples(dataset)
    if epoch_size == 0:
        raise ValueError(f"{source}: this process's slice is empty (process {jax.process_index()})")
    first_epoch, offset = divmod(start_batch * batch_size, epoch_size)

    def epoch(index):
        if shuffle_buffer == 0:
            return dataset
        epoch_seed = tf.constant(seed, tf.int64) * 1_000_003 + index
        return dataset.shuffle(shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)

    batches = (tf.data.Dataset.counter(first_epoch).flat_map(epoch).skip(offset)
               .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    return batches.as_numpy_iterator()


def eval_batches(source: DataSource, batch_size: int, num_batches: int) -> Iterator[NumpyBatch]:
    """The same `num_batches` batches [batch_size, ...] on every call: the slice in order, repeated if short."""
    dataset = process_slice(source)
    if count_examples(dataset) == 0:
        raise ValueError(f"{source}: this process's evaluation slice is empty (process {jax.process_index()})")
    batches = dataset.repeat().batch(batch_size, drop_remainder=True).take(num_batches)
    return batches.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
