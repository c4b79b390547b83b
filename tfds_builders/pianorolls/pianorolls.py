"""TFDS builder `pianorolls`: fixed-length binary piano-roll segments, split by piece (chorales: by melody, so
that settings of one tune share a split; `smdiff.data.tune_groups`).

Build (the default config needs no download; the chorales ship with music21):

    tfds build tfds_builders/pianorolls --data_dir=data/tfds               # bach_chorales
    tfds build tfds_builders/pianorolls --config=bach_chorales_voices --data_dir=data/tfds
    tfds build tfds_builders/pianorolls --config=bach_chorales_c --data_dir=data/tfds   # in C major / A minor
    tfds build tfds_builders/pianorolls --config=midi_dir --manual_dir=/path/to/midis
    tfds build tfds_builders/pianorolls --config=lmd_full --manual_dir=/dir/with/lmd_full.tar.gz

Features: `roll` uint8 [T, P] (all tracks merged), `tracks` uint8 [V, T, P] (chorales: S, A, T, B;
MIDI: one merged track), `piece`, `start_step`, `transpose`, `key_tonic`, `key_mode` (0 major, 1 minor).
`bach_chorales_voices` stores `roll` as voice channels uint8 [T, P, 4] (S, A, T, B; `tracks` channel-last),
from the same pieces, pitch range, splits and segments as `bach_chorales`: its channels merged are that roll.
`bach_chorales_c` (and `bach_chorales_voices_c`) move every chorale, before segmenting, to C major / A minor by the
smallest shift (-6..+5 semitones) from its stored key (`key_tonic`/`key_mode`: Krumhansl-Kessler over all four
voices: a `Piece` keeps notes only, no key signature, and this estimate is what the key features and the
harmonization baselines already use), without transposed train copies; splits come from the untransposed
pieces (the same as bach_chorales'), and the pitch range from the moved ones. A model trained on them harmonizes a
soprano in any key through `smdiff.generators.common_key`.
P (the pitch range) is chosen from the data, so the roll's pitch axis is stored as unknown-sized; the
range and the train split's statistics (density of ones r, polyphony) are saved with the dataset and
read back with `smdiff.data.tfds_io.load_metadata`.
"""
from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from smdiff.data import chorales, midi_files, midi_pieces
from smdiff.data.array_record import WithArrayRecordCopy
from smdiff.data.pianoroll_segments import (SPLITS, SegmentConfig, choose_pitch_range, piece_segments, piece_splits,
                                            roll_statistics, to_common_key)



@dataclasses.dataclass
class PianorollConfig(tfds.core.BuilderConfig):
    source: str = "bach_chorales"  # bach_chorales | midi_dir | lmd_full
    num_tracks: int = 4
    segment: SegmentConfig = dataclasses.field(default_factory=SegmentConfig)
    split_by_melody: bool = False  # keep pieces sharing a melody (track 0) in one split
    voice_channels: bool = False  # roll [T, P, num_tracks], one channel per track, instead of merged [T, P]
    transpose_to_common_key: bool = False  # every piece moved to C major / A minor before segmenting


def _configs() -> list[PianorollConfig]:
    paper_resolution = SegmentConfig(steps_per_quarter=24, segment_quarters=16, stride_quarters=8)
    common_key = SegmentConfig(transpositions=(0,))  # transposed train copies would undo the common key
    return [
        PianorollConfig(name="bach_chorales", description="music21's four-voice Bach chorales, 4 steps/quarter.",
                        split_by_melody=True),
        PianorollConfig(name="bach_chorales_voices",
                        description="The chorales as rolls [T, P, 4], one channel per voice (S, A, T, B).",
                        split_by_melody=True, voice_channels=True),
        PianorollConfig(name="bach_chorales_c",
                        description="The chorales moved to C major / A minor (by their estimated key), no transposed "
                                    "copies; same pieces in each split as bach_chorales.",
                        segment=common_key, split_by_melody=True, transpose_to_common_key=True),
        PianorollConfig(name="bach_chorales_voices_c",
                        description="bach_chorales_voices moved to C major / A minor, as bach_chorales_c.",
                        segment=common_key, split_by_melody=True, voice_channels=True, transpose_to_common_key=True),
        PianorollConfig(
            name="bach_chorales_24tpq",
            description="The chorales at the paper's 24 ticks per beat (384-step segments).",
            segment=paper_resolution,
            split_by_melody=True,
        ),
        PianorollConfig(name="midi_dir", description="Every MIDI file under --manual_dir.", source="midi_dir", num_tracks=1),
        PianorollConfig(
            name="lmd_full", description="Lakh MIDI (lmd_full.tar.gz in --manual_dir).", source="lmd_full", num_tracks=1
        ),
    ]


class Pianorolls(WithArrayRecordCopy, tfds.core.GeneratorBasedBuilder):
    """Binary piano-roll segments with voice tracks, splits by piece, transposed copies on train."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "Chorales split by melody: settings of one tune (a shared 12-note phrase, or 8 notes over 3 bars, "
                 "transposition-invariant) share a split; 1.0.0 put e.g. bwv270 in test and bwv244.54 in train.",
    }
    BUILDER_CONFIGS = _configs()
    DEFAULT_CONFIG_NAME = "bach_chorales"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "midi_dir: pass --manual_dir=<folder of .mid files>; lmd_full: put lmd_full.tar.gz from "
        "https://colinraffel.com/projects/lmd/ in --manual_dir. bach_chorales needs nothing."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        steps = config.segment.segment_steps
        binary = dict(dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB)
        roll_shape = (steps, None, config.num_tracks) if config.voice_channels else (steps, None)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "roll": tfds.features.Tensor(shape=roll_shape, **binary),
                "tracks": tfds.features.Tensor(shape=(config.num_tracks, steps, None), **binary),
                "piece": tfds.features.Text(),
                "start_step": tfds.features.Scalar(dtype=np.int32),
                "transpose": tfds.features.Scalar(dtype=np.int32),
                "key_tonic": tfds.features.Scalar(dtype=np.int32),
                "key_mode": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=None,
            metadata=tfds.core.MetadataDict(),  # filled with the statistics in _split_generators
        )

    def _load_pieces(self, dl_manager):
        config = self.builder_config
        spq = config.segment.steps_per_quarter
        if config.source == "bach_chorales":
            return chorales.load_chorales(spq)
        if config.source == "midi_dir":
            return midi_pieces.load_midi_pieces(os.fspath(dl_manager.manual_dir), spq)
        return midi_pieces.load_midi_pieces(os.fspath(midi_files.lmd_archive_or_folder(dl_manager.manual_dir)), spq)

    def _split_generators(self, dl_manager):
        config = self.builder_config
        segment = config.segment
        pieces, skips = self._load_pieces(dl_manager)
        splits = piece_splits(pieces, segment, config.split_by_melody)  # before any transposition
        if config.transpose_to_common_key:
            pieces = [to_common_key(piece)[0] for piece in pieces]
        pitch_range = choose_pitch_range(pieces, segment)
        by_split = {split: [p for p in pieces if splits[p.name] == split] for split in SPLITS}
        empty = [split for split, members in by_split.items() if not members]
        if empty:
            raise RuntimeError(f"splits {empty} got no piece out of {len(pieces)}: too few pieces")

        segment_skips = collections.Counter()
        train_rolls = (
            example["roll"]
            for piece in by_split["train"]
            for _, example in piece_segments(piece, "train", pitch_range, segment, segment_skips, config.voice_channels)
        )
        statistics = {
            **roll_statistics(train_rolls),
            "lowest_pitch": pitch_range.lowest_pitch,
            "num_pitches": pitch_range.num_pitches,
            "steps_per_quarter": segment.steps_per_quarter,
            "segment_steps": segment.segment_steps,
            "pieces_per_split": {split: len(members) for split, members in by_split.items()},
            "common_key": config.transpose_to_common_key,
            "skipped_pieces": dict(skips),
            "skipped_train_segments": dict(segment_skips),
        }
        logging.info("pianorolls statistics: %s", statistics)
        self.info.metadata.update(statistics)
        return {
            split: self._generate_examples(members, split, pitch_range) for split, members in by_split.items()
        }

    def _generate_examples(self, pieces, split, pitch_range):
        config = self.builder_config
        skips = collections.Counter()
        for piece in pieces:
            yield from piece_segments(piece, split, pitch_range, config.segment, skips, config.voice_channels)
