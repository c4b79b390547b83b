"""`melody_chunks` through TFDS's own builder test case (`tfds.testing.DatasetBuilderTestCase`)."""
import dataclasses
import pathlib

import tensorflow_datasets as tfds

from tfds_builders import melody_common
from tfds_builders.melody_chunks import MelodyChunks


class MelodyChunksMidiDirTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = MelodyChunks
    # Seed 1: the 3/4 tune the strict rules skip lands in train, so every split has chunks.
    BUILDER_CONFIG_NAMES_TO_TEST = [
        dataclasses.replace(melody_common.MIDI_DIR, name="midi_dir_seed1", seed=1, workers=1)
    ]
    EXAMPLE_DIR = str(pathlib.Path(__file__).parent / "data" / "midi")
    # validation: altdeu10_0115 (8 chunks); test: altdeu10_0312 (12 chunks); train: the other 7 tunes.
    SPLITS = {"train": 61, "validation": 8, "test": 12}
    MOCK_OUT_FORBIDDEN_OS_FUNCTIONS = False  # the reader lists folders and runs a process pool
    SKIP_CHECKSUMS = True  # nothing is downloaded


if __name__ == "__main__":
    tfds.testing.test_main()
