"""The input pipeline on a real prepared TFDS dataset: melody chunks built from the MIDI files in
tests/data/midi, read through `TfdsSource` as training and evaluation batches."""
import dataclasses
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from smdiff.training import input_pipeline
from tfds_builders import melody_common
from tfds_builders.melody_chunks import MelodyChunks

MIDI_DIR = pathlib.Path(__file__).parent / "data" / "midi"


@pytest.fixture(scope="module")
def chunks_dir(tmp_path_factory):
    """data_dir holding melody_chunks/midi_dir_test (seed 1 gives every split some songs)."""
    data_dir = tmp_path_factory.mktemp("tfds")
    config = dataclasses.replace(melody_common.MIDI_DIR, name="midi_dir_test", seed=1, workers=1)
    builder = MelodyChunks(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(MIDI_DIR)))
    return str(data_dir), builder.info.splits["train"].num_examples


def test_training_batches_cover_each_epoch_once_and_resume_exactly(chunks_dir):
    data_dir, num_train = chunks_dir
    source = input_pipeline.TfdsSource("melody_chunks/midi_dir_test", "train", data_dir)
    stream = input_pipeline.train_batches(source, 5, seed=0)
    batches = [next(stream) for _ in range(-(-2 * num_train // 5))]  # two whole epochs
    assert set(batches[0]) == {"events"}  # song_id (a string) is dropped
    assert batches[0]["events"].shape == (5, 32) and batches[0]["events"].dtype == np.int32
    events = np.concatenate([batch["events"] for batch in batches])
    epoch_0, epoch_1 = events[:num_train], events[num_train:2 * num_train]
    in_file_order = np.stack([example["events"] for example in tfds.as_numpy(
        tfds.builder("melody_chunks/midi_dir_test", data_dir=data_dir).as_dataset(split="train"))])
    # Each epoch is a permutation of the split (compared as multisets of rows), in a new order.
    np.testing.assert_array_equal(_sorted_rows(epoch_0), _sorted_rows(in_file_order))
    np.testing.assert_array_equal(_sorted_rows(epoch_1), _sorted_rows(in_file_order))
    assert not np.array_equal(epoch_0, epoch_1) and not np.array_equal(epoch_0, in_file_order)
    resumed = input_pipeline.train_batches(source, 5, seed=0, start_step=7)
    for expected in batches[7:]:
        np.testing.assert_array_equal(next(resumed)["events"], expected["events"])


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def test_evaluation_batches_are_the_same_every_time(chunks_dir):
    data_dir, _ = chunks_dir
    source = input_pipeline.TfdsSource("melody_chunks/midi_dir_test", "validation", data_dir)
    first = [batch["events"] for batch in input_pipeline.eval_batches(source, 4, num_batches=3)]
    second = [batch["events"] for batch in input_pipeline.eval_batches(source, 4, num_batches=3)]
    assert len(first) == 3
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_a_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="melody_chunks"):
        input_pipeline.train_batches(input_pipeline.TfdsSource("melody_chunks/embedded", "train", str(tmp_path)), 4, 0)


def test_builders_add_a_random_access_copy_with_the_same_examples(chunks_dir):
    data_dir, num_train = chunks_dir
    source = input_pipeline.TfdsSource("melody_chunks/midi_dir_test", "train", data_dir)
    examples = source.random_access()
    in_file_order = list(tfds.as_numpy(
        tfds.builder("melody_chunks/midi_dir_test", data_dir=data_dir).as_dataset(split="train", shuffle_files=False)))
    assert len(examples) == len(in_file_order) == num_train
    for index in (0, num_train // 2, num_train - 1):
        np.testing.assert_array_equal(examples[index]["events"], in_file_order[index]["events"])


def test_a_dataset_without_the_random_access_copy_is_a_clear_error(tmp_path):
    config = dataclasses.replace(melody_common.MIDI_DIR, name="midi_dir_tfrecord_only", seed=1, workers=1)
    builder = MelodyChunks(config=config, data_dir=str(tmp_path))
    # TFDS's own preparation, without the copy smdiff's builders add (as a dataset built before them).
    tfds.core.GeneratorBasedBuilder.download_and_prepare(
        builder, download_config=tfds.download.DownloadConfig(manual_dir=str(MIDI_DIR)))
    source = input_pipeline.TfdsSource("melody_chunks/midi_dir_tfrecord_only", "train", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="has no ArrayRecord copy.*add_array_record_copy"):
        input_pipeline.train_batches(source, 4, seed=0)
    from smdiff.data.array_record import add_array_record_copy

    add_array_record_copy(tfds.builder("melody_chunks/midi_dir_tfrecord_only", data_dir=str(tmp_path)))
    assert next(input_pipeline.train_batches(source, 4, seed=0))["events"].shape == (4, 32)
