"""Training and evaluation batches in an order that does not depend on the topology.

The examples of a split are read by random access (TFDS's ArrayRecord data source, or a small
in-memory dataset) through grain. The training order is a global sequence: epoch e is a permutation of
the whole split drawn from (seed, e) by grain's index shuffle, epochs follow each other, and global
batch b is positions [b * G, (b + 1) * G) of that sequence (G = global batch size). Process p of P
reads only its rows [p * G/P, (p + 1) * G/P) of every global batch, which is the slice of the global
batch that `jax.make_array_from_process_local_data` puts on its devices. So the same seed gives the
same global batches on 1 process with 8 devices and on 4 processes with 2 each, and the data position
is one topology-free number, the global batches consumed (= the train step): a run resumed at step n
on any number of processes reads exactly what an uninterrupted run would have, with nothing to skip.
"""
import dataclasses
import importlib
from typing import Any, Iterator, Sequence

import grain
import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from smdiff.data.array_record import has_array_record

NumpyBatch = dict[str, np.ndarray]
Example = dict[str, Any]

# Reading threads and batches read ahead per process (small: the examples are small).
_READ_OPTIONS = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)


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

    def random_access(self) -> Sequence[Example]:
        """The whole split as a random-access sequence of examples (TFDS ArrayRecord data source)."""
        builder = self._builder()
        # The prepared dataset's own info: TFDS 4.9.10's registered builders read dataset_info.json without
        # its alternative file formats (DatasetInfo.read_from_directory keeps them only in the proto), so
        # `as_data_source` on them refuses the ArrayRecord copy; the builder made from the directory has them.
        prepared = tfds.builder_from_directory(builder.data_dir)
        if not has_array_record(prepared):
            raise FileNotFoundError(
                f"{self.name} in {builder.data_dir} has no ArrayRecord copy, which training reads (random "
                f"access for a topology-independent order); smdiff's builders write one since this was "
                f"built. Add it in place: python -c \"import tensorflow_datasets as tfds, tfds_builders; "
                f"from smdiff.data.array_record import add_array_record_copy; add_array_record_copy("
                f"tfds.builder('{self.name}', data_dir='{self.data_dir}'))\"")
        return prepared.as_data_source(split=self.split, file_format=tfds.core.FileFormat.ARRAY_RECORD)

    def load_process_slice(self) -> tf.data.Dataset:
        """This process's even share of the split (`tfds.split_for_jax_process`), in file order, as
        tf.data (for jobs that stream a split once rather than train on it)."""
        split = tfds.split_for_jax_process(self.split)
        # No TFDS auto-cache: a prefix read would build and throw away a half in-memory cache each time.
        return self._builder().as_dataset(split=split, shuffle_files=False,
                                          read_config=tfds.ReadConfig(try_autocache=False))

    def _builder(self) -> tfds.core.DatasetBuilder:
        _register_smdiff_builder(self.name.split("/")[0])
        return tfds.builder(self.name, data_dir=self.data_dir)


def _register_smdiff_builder(dataset_name: str) -> None:
    """smdiff's builders live in `tfds_builders.<name>` and register themselves on import; other names
    are left to TFDS (its catalog, or a prepared dataset found in data_dir)."""
    try:
        importlib.import_module(f"tfds_builders.{dataset_name}")
    except ModuleNotFoundError as error:
        if error.name not in ("tfds_builders", f"tfds_builders.{dataset_name}"):
            raise


DataSource = TfdsSource | tf.data.Dataset


def random_access(source: DataSource | Sequence[Example]) -> Sequence[Example]:
    """The source's examples by index: a TFDS data source, or a finite tf.data.Dataset read into memory
    (for small in-memory data such as tests'); an already random-access sequence is returned as it is."""
    if isinstance(source, TfdsSource):
        examples = source.random_access()
    elif not isinstance(source, tf.data.Dataset):
        examples = source
    else:
        if not isinstance(source.element_spec, dict):
            raise ValueError(f"training data must be a dataset of dicts (feature name -> tensor), got "
                             f"elements {source.element_spec}")
        if int(source.cardinality()) == tf.data.INFINITE_CARDINALITY:
            raise ValueError("the dataset is infinite: give the finite split, the pipeline repeats it itself")
        examples = list(source.as_numpy_iterator())
    if len(examples) == 0:
        raise ValueError(f"{source}: the split is empty")
    return examples


def numeric_features(example: Example) -> dict[str, np.ndarray]:
    """The example without its string features (such as `song_id`), which cannot become device arrays."""
    if not isinstance(example, dict):
        raise ValueError(f"training data must be examples of dicts (feature name -> array), got {type(example)}")
    numeric = {name: np.asarray(value) for name, value in example.items()
               if not isinstance(value, (bytes, str)) and np.asarray(value).dtype.kind not in "SUO"}
    if not numeric:
        raise ValueError(f"the examples have no numeric features to train on: {sorted(example)}")
    return numeric


def process_rows(global_batch_size: int, process_index: int | None = None,
                 process_count: int | None = None) -> tuple[int, int]:
    """(this process's index, its rows per global batch); errors if the batch does not split evenly."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if global_batch_size % process_count:
        raise ValueError(f"global batch {global_batch_size} does not split over {process_count} processes")
    return process_index, global_batch_size // process_count


def _process_batches(examples: grain.MapDataset, global_batch_size: int, process_index: int | None,
                     process_count: int | None) -> grain.MapDataset:
    """Global batch b of `examples` -> this process's rows of it, as batch b of the result."""
    index, rows = process_rows(global_batch_size, process_index, process_count)
    count = global_batch_size // rows
    # Consecutive groups of `rows` examples; global batch b is groups b*count .. b*count + count - 1.
    return examples.map(numeric_features).batch(rows, drop_remainder=True)[index::count]


def train_batches(source: DataSource | Sequence[Example], global_batch_size: int, seed: int, start_step: int = 0, *,
                  shuffle: bool = True, process_index: int | None = None,
                  process_count: int | None = None) -> Iterator[NumpyBatch]:
    """Endless batches [global_batch_size / process_count, ...]: this process's rows of global batches
    start_step, start_step + 1, ...

    Args:
      source: the split to read (or its `random_access` sequence, opened once).
      global_batch_size: examples per step over all processes.
      seed: fixes every epoch's permutation.
      start_step: global batches already consumed (the checkpointed data position).
      shuffle: False reads the split in order, epoch after epoch.
      process_index, process_count: default to jax's (given explicitly to check topology independence
        in one process).
    """
    examples = grain.MapDataset.source(random_access(source))
    if shuffle:
        examples = examples.seed(seed).shuffle()
    # repeat() reseeds the shuffle each epoch: epoch e's permutation is a function of (seed, e) alone.
    batches = _process_batches(examples.repeat(), global_batch_size, process_index, process_count)
    return iter(batches[start_step:].to_iter_dataset(_READ_OPTIONS))


def eval_batches(source: DataSource | Sequence[Example], global_batch_size: int, num_batches: int, *,
                 process_index: int | None = None, process_count: int | None = None) -> Iterator[NumpyBatch]:
    """This process's rows of the same `num_batches` global batches on every call: the split in order,
    repeated if short."""
    examples = grain.MapDataset.source(random_access(source)).repeat()
    batches = _process_batches(examples, global_batch_size, process_index, process_count)
    return iter(batches[:num_batches].to_iter_dataset(_READ_OPTIONS))
