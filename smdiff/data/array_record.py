"""A random-access copy of a prepared TFDS dataset: its TFRecord shards rewritten as ArrayRecord shards.

TFDS 4.9.10 reads ArrayRecord only through `tfds.data_source` (random access, what grain needs for a
global, topology-independent shuffle) and TFRecord only through `as_dataset` (tf.data, what the sampling
and evaluation jobs read). smdiff's builders therefore write TFRecord as usual and add an ArrayRecord copy
of every shard, registered as an alternative file format in `dataset_info.json`. TFDS's own converter
(`tfds convert_format`) does the same but imports apache_beam, which does not install next to the pinned
protobuf; copying serialized records needs no decoding, so this is a plain loop.
"""
import os

import tensorflow as tf
import tensorflow_datasets as tfds
from array_record.python import array_record_module

ARRAY_RECORD = tfds.core.FileFormat.ARRAY_RECORD


def has_array_record(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether the prepared dataset can be opened with `tfds.data_source`."""
    return ARRAY_RECORD in builder.info.available_file_formats()


def add_array_record_copy(builder: tfds.core.DatasetBuilder) -> None:
    """Writes an ArrayRecord copy of every split's shards next to them and records it in
    `dataset_info.json`; a no-op when the dataset already has one.

    Each shard is written to a temporary name and renamed, and the info is updated last, so an
    interrupted copy is redone by the next call instead of being read half-written.
    """
    if has_array_record(builder):
        return
    source_format = builder.info.file_format
    for split in builder.info.splits.values():
        for source_path in split.filepaths:
            # <name>-<split>.tfrecord-00000-of-00001 -> <name>-<split>.array_record-00000-of-00001 (only the
            # format part: a dataset or config name may contain "tfrecord" too).
            head, _, shard = source_path.name.rpartition(f".{source_format.file_suffix}-")
            target_path = str(source_path.parent / f"{head}.{ARRAY_RECORD.file_suffix}-{shard}")
            partial_path = target_path + ".incomplete"
            writer = array_record_module.ArrayRecordWriter(partial_path, "group_size:1")  # TFDS's own option
            for record in tf.data.TFRecordDataset(str(source_path)).as_numpy_iterator():
                writer.write(record)
            writer.close()
            tf.io.gfile.rename(partial_path, target_path, overwrite=True)
    builder.info.add_alternative_file_format(ARRAY_RECORD)
    builder.info.write_to_directory(os.fspath(builder.data_path), all_metadata=False)


class WithArrayRecordCopy:
    """Builder mixin (listed before tfds.core.GeneratorBasedBuilder): `download_and_prepare` also adds
    the ArrayRecord copy, however the build is started (`smdiff build`, a builder's own main, a test)."""

    def download_and_prepare(self, *args, **kwargs) -> None:
        super().download_and_prepare(*args, **kwargs)
        add_array_record_copy(self)
