"""2-bar melody chunks for the melody VAE: `events` int32 [32] (90 classes), `song_id`.

Every non-all-rest 2-bar chunk of every extracted melody; sources, splits and the embedded corpus's
choices are described in `tfds_builders/melody_common.py`. Build:

  tfds build tfds_builders/melody_chunks --data_dir=data/tfds                       # embedded
  tfds build tfds_builders/melody_chunks --config=midi_dir --manual_dir=<folder> --data_dir=data/tfds
  tfds build tfds_builders/melody_chunks --config=lmd_full --manual_dir=<folder with lmd_full.tar.gz> \\
      --data_dir=data/tfds

From Python: `import tfds_builders.melody_chunks` registers it for
`tfds.builder("melody_chunks/embedded", data_dir="data/tfds")`.
"""
from __future__ import annotations

import collections
from collections.abc import Iterator

import tensorflow_datasets as tfds

from smdiff.data.chunks import CHUNK_STEPS, all_rest
from smdiff.data.songs import SongChunks
from tfds_builders.melody_common import MelodyBuilder, chunk_key, events_feature


class MelodyChunks(MelodyBuilder):
    """2-bar (32-step) melody chunks in the 90-class event encoding, split by song."""

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {"events": events_feature((CHUNK_STEPS,)), "song_id": tfds.features.Text()}
        )

    def _song_examples(self, song: SongChunks, tally: collections.Counter) -> Iterator[tuple[str, dict]]:
        for melody_index, chunks in enumerate(song.melodies):  # chunks: [num_chunks, 32]
            for chunk_index in (~all_rest(chunks)).nonzero()[0]:
                yield chunk_key(song.song_id, melody_index, int(chunk_index)), {
                    "events": chunks[chunk_index],
                    "song_id": song.song_id,
                }
