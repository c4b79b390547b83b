"""Song windows for the sequence models: k consecutive 2-bar chunks of one melody.

Features: `events` int32 [k, 32] (90 classes), `song_id`, `start_chunk` (index of the window's first
chunk in its melody). Windows start every `stride` chunks; a window holding an all-rest chunk is
dropped (an all-rest chunk gets no latent) and counted. k and stride per config are described in
`tfds_builders/melody_common.py` (embedded: k=4; lmd_full and midi_dir: k=32, the paper's). Build:

  tfds build tfds_builders/melody_windows --data_dir=data/tfds                      # embedded
  tfds build tfds_builders/melody_windows --config=midi_dir --manual_dir=<folder> --data_dir=data/tfds
  tfds build tfds_builders/melody_windows --config=lmd_full --manual_dir=<folder with lmd_full.tar.gz> \\
      --data_dir=data/tfds

From Python: `import tfds_builders.melody_windows` registers it for
`tfds.builder("melody_windows/embedded", data_dir="data/tfds")`.
"""
from __future__ import annotations

import collections
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from smdiff.data.chunks import CHUNK_STEPS, count_windows, song_windows
from smdiff.data.songs import SongChunks
from tfds_builders.melody_common import MelodyBuilder, chunk_key, events_feature


class MelodyWindows(MelodyBuilder):
    """Windows of k consecutive 2-bar melody chunks, split by song."""

    def _features(self) -> tfds.features.FeaturesDict:
        k = self.builder_config.window_chunks
        return tfds.features.FeaturesDict(
            {
                "events": events_feature((k, CHUNK_STEPS)),
                "song_id": tfds.features.Text(),
                "start_chunk": tfds.features.Scalar(dtype=np.int32),
            }
        )

    def _song_examples(self, song: SongChunks, tally: collections.Counter) -> Iterator[tuple[str, dict]]:
        k, stride = self.builder_config.window_chunks, self.builder_config.stride
        for melody_index, chunks in enumerate(song.melodies):  # chunks: [num_chunks, 32]
            kept = 0
            for start, window in song_windows(chunks, k, stride):  # window: [k, 32]
                kept += 1
                yield chunk_key(song.song_id, melody_index, start), {
                    "events": window,
                    "song_id": song.song_id,
                    "start_chunk": start,
                }
            tally["windows_dropped_all_rest_chunk"] += count_windows(len(chunks), k, stride) - kept
            tally["melodies_dropped_shorter_than_window"] += len(chunks) < k
