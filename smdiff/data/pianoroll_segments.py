"""From `Piece`s to fixed-length training segments: splits by piece, pitch range, transposition, stats.

What the piano-roll TFDS builder writes, as plain functions so they can be tested without TFDS.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
from typing import Iterator, Sequence

import numpy as np

from smdiff.data import tune_groups
from smdiff.data.keys import MODES, common_key_shift, estimate_key
from smdiff.data.pianoroll import Piece, PitchRange, notes_to_roll, segment_starts, tracks_to_channels

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    steps_per_quarter: int = 4
    segment_quarters: int = 16  # the paper's 384-step segments are 16 beats of 24 ticks
    stride_quarters: int = 8
    transpositions: tuple[int, ...] = (-3, -2, -1, 0, 1, 2, 3)  # train split only
    validation_fraction: float = 0.1
    test_fraction: float = 0.1

    @property
    def segment_steps(self) -> int:
        return self.segment_quarters * self.steps_per_quarter

    @property
    def stride_steps(self) -> int:
        return self.stride_quarters * self.steps_per_quarter


def split_of(piece_name: str, config: SegmentConfig) -> str:
    """A piece's split, from a hash of its name: stable across machines, runs and corpus order."""
    fraction = int(hashlib.md5(piece_name.encode()).hexdigest()[:8], 16) / 2**32
    if fraction < config.test_fraction:
        return "test"
    if fraction < config.test_fraction + config.validation_fraction:
        return "validation"
    return "train"


def piece_splits(pieces: Sequence[Piece], config: SegmentConfig, by_melody: bool) -> dict[str, str]:
    """Piece name -> split. by_melody: every piece takes the split of its melody group's name
    (`tune_groups.group_by_melody` on track 0), so settings of one tune never straddle splits."""
    if not by_melody:
        return {piece.name: split_of(piece.name, config) for piece in pieces}
    groups = tune_groups.group_by_melody(pieces, config.steps_per_quarter)
    return {name: split_of(group, config) for name, group in groups.items()}


def to_common_key(piece: Piece) -> tuple[Piece, int]:
    """(The piece moved to C major / A minor, the shift in semitones [-6, 5]): its key is the one the dataset
    stores as `key_tonic`/`key_mode` (Krumhansl-Kessler on all voices' notes, duration-weighted), and every note
    moves by the smallest interval that takes that key to the common one."""
    shift = common_key_shift(estimate_key(piece.merged_notes()))
    moved = tuple(track + np.array([0, 0, shift], np.int32) for track in piece.tracks)
    return dataclasses.replace(piece, tracks=moved), shift


def choose_pitch_range(pieces: Sequence[Piece], config: SegmentConfig, multiple_of: int = 8) -> PitchRange:
    """The range of all pieces' pitches, widened by the largest transpositions, sized for the U-Net."""
    lows, highs = zip(*(piece.pitch_bounds() for piece in pieces))
    return PitchRange.covering(
        min(lows) + min(config.transpositions), max(highs) + max(config.transpositions), multiple_of
    )


def piece_segments(
    piece: Piece, split: str, pitch_range: PitchRange, config: SegmentConfig, skips: collections.Counter,
    voice_channels: bool = False,
) -> Iterator[tuple[str, dict]]:
    """(key, example) for every segment of a piece, transposed copies on the train split only.

    example: `roll` uint8 [T, P] (all tracks merged; with `voice_channels` [T, P, V], one channel per track),
    `tracks` uint8 [V, T, P], `piece`, `start_step`,
    `transpose`, `key_tonic`, `key_mode` (index into MODES) of the transposed piece.
    Skipped transpositions (out of range) and empty segments are counted in `skips`.
    """
    low, high = piece.pitch_bounds()
    key = estimate_key(piece.merged_notes())
    shifts = config.transpositions if split == "train" else (0,)
    for shift in shifts:
        if low + shift < pitch_range.lowest_pitch or high + shift > pitch_range.highest_pitch:
            skips["transposition out of pitch range"] += 1
            continue
        tracks = np.stack([
            notes_to_roll(track + np.array([0, 0, shift], np.int32), piece.num_steps, pitch_range)
            for track in piece.tracks
        ])  # [V, steps, P]
        shifted_key = key.transposed(shift)
        for start in segment_starts(piece.num_steps, config.segment_steps, config.stride_steps):
            segment = tracks[:, start:start + config.segment_steps]  # [V, T, P]
            if not segment.any():
                skips["empty segment"] += 1
                continue
            example = {
                "roll": tracks_to_channels(segment) if voice_channels else segment.max(axis=0),
                "tracks": segment,
                "piece": piece.name,
                "start_step": start,
                "transpose": shift,
                "key_tonic": shifted_key.tonic,
                "key_mode": MODES.index(shifted_key.mode),
            }
            yield f"{piece.name}/{shift:+d}/{start}", example


def roll_statistics(rolls: Iterator[np.ndarray]) -> dict[str, float]:
    """Density of ones r (over every cell, channels included), mean/max polyphony of sounding frames (of the
    channels merged), and how many segments were seen; rolls [T, P] or voice-channel rolls [T, P, V], which also
    get `merged_density`, the density of their channels merged (a merged roll's r)."""
    ones = cells = merged_ones = merged_cells = sounding_frames = max_polyphony = count = 0
    for roll in rolls:  # [T, P] or [T, P, V]
        ones += int(roll.sum())
        cells += roll.size
        merged = roll.max(axis=-1) if roll.ndim == 3 else roll  # [T, P]
        per_frame = merged.sum(axis=1)
        merged_ones += int(per_frame.sum())
        merged_cells += merged.size
        sounding_frames += int((per_frame > 0).sum())
        max_polyphony = max(max_polyphony, int(per_frame.max()))
        count += 1
    if count == 0:
        raise ValueError("no segments to compute statistics over")
    statistics = {
        "density": ones / cells,
        "mean_polyphony": merged_ones / max(sounding_frames, 1),
        "max_polyphony": max_polyphony,
        "num_segments": count,
    }
    if merged_cells < cells:
        statistics["merged_density"] = merged_ones / merged_cells
    return statistics
