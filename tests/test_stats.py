"""Statistics of built melody datasets: exact counts on hand-made examples and a real built dataset."""
import dataclasses
import json
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from smdiff import stats
from tfds_builders import melody_common
from tfds_builders.melody_chunks import MelodyChunks

MIDI_DIR = pathlib.Path(__file__).parent / "data" / "midi"


def test_split_statistics_counts_notes_once_per_chunk_position():
    chunk_a = np.zeros(32, np.int32)
    chunk_a[[0, 4, 8]] = [41, 1, 43]  # pitch 60 for 4 steps, pitch 62 until the end (24 steps)
    chunk_b = np.zeros(32, np.int32)
    chunk_b[[0, 2]] = [46, 1]  # pitch 65 for 2 steps
    windows = [  # two overlapping windows of one song share chunk position 1
        {"events": np.stack([chunk_a, chunk_b]), "song_id": b"s", "start_chunk": 0},
        {"events": np.stack([chunk_b, chunk_a]), "song_id": b"s", "start_chunk": 1},
    ]
    result = stats.split_statistics(windows)
    assert result["examples"] == 2 and result["songs"] == 1 and result["distinct_chunks"] == 3
    assert result["pitch_histogram"] == {60: 2, 62: 2, 65: 1}
    assert result["duration_histogram_steps"] == {2: 1, 4: 2, 24: 2}
    assert result["song_length_chunks"]["max"] == 3


def test_stats_of_a_built_dataset(tmp_path):
    config = dataclasses.replace(melody_common.MIDI_DIR, name="stats_test", workers=1,
                                 split_fractions=(("train", 1.0),))
    builder = MelodyChunks(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(MIDI_DIR)))
    output = tmp_path / "stats.json"
    stats.main(stats.FLAGS(["stats", "--dataset=melody_chunks/stats_test", f"--data_dir={tmp_path}",
                            f"--output={output}"]))
    saved = json.loads(output.read_text())
    train = saved["splits"]["train"]
    tally = saved["build_tally"]["train"]
    assert train["examples"] == train["distinct_chunks"] == tally["chunks"] > 0
    assert train["songs"] == tally["songs_kept"] == 9
    assert tally["skipped_song/no_16_step_bars"] == 1
    assert sum(train["pitch_histogram"].values()) == sum(train["duration_histogram_steps"].values())
    assert sum(train["song_length_chunks"]["histogram"].values()) == 9
    assert all(21 <= int(p) <= 108 for p in train["pitch_histogram"])
