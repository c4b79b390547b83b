"""Harmonizing a soprano in any key with a model trained in a common key (`pianorolls/bach_chorales_c`: every
chorale moved to C major / A minor).

The soprano's key is estimated from the soprano alone, with the estimator the harmony metrics use for the given
melody's key (`harmony.melody_key`); the soprano moves by the smallest shift to C major / A minor
(`keys.common_key_shift`, -6..+5 semitones; an octave further where that leaves the model's pitch range), is
harmonized there and the result moves back by the opposite shift, so the given soprano comes back exactly and the
harmonization is scored in the original key like any other.
"""
from __future__ import annotations

import jax
import numpy as np

from smdiff.data.keys import common_key_shift
from smdiff.data.pianoroll import PitchRange
from smdiff.evaluation.harmony import melody_key, voices_from_tracks
from smdiff.generators.pianoroll import PianorollGenerator


def transpose_rolls(rolls: np.ndarray, shifts: np.ndarray, source: PitchRange, target: PitchRange
                    ) -> tuple[np.ndarray, int]:
    """Rolls [n, T, P_source(, V)] at `source`'s pitches, each moved by shifts int [n] semitones, as rolls
    [n, T, P_target(, V)] at `target`'s pitches; and the number of sounding cells that fell outside `target`
    (dropped)."""
    rolls = np.asarray(rolls)
    moved = np.zeros(rolls.shape[:2] + (target.num_pitches,) + rolls.shape[3:], rolls.dtype)
    dropped = 0
    for i, (roll, shift) in enumerate(zip(rolls, np.asarray(shifts), strict=True)):
        columns = np.arange(source.num_pitches) + source.lowest_pitch + shift - target.lowest_pitch  # [P_source]
        inside = (columns >= 0) & (columns < target.num_pitches)
        moved[i][:, columns[inside]] = roll[:, inside]
        dropped += int(roll[:, ~inside].astype(bool).sum())
    return moved, dropped


def common_key_shifts(soprano: np.ndarray, source: PitchRange, model_range: PitchRange) -> np.ndarray:
    """int [n]: the shift taking each soprano roll [n, T, P] (at `source`'s pitches) to C major / A minor by the key
    estimated from it (`melody_key`; 0 for a silent soprano), -6..+5 semitones, or that shift -+12 where the
    soprano would otherwise leave `model_range`.

    Raises:
      ValueError: a soprano that fits `model_range` with none of them.
    """
    shifts = []
    for i, roll in enumerate(np.asarray(soprano)):
        voice = voices_from_tracks(roll[None], source.lowest_pitch)  # [1, T]
        key = melody_key(voice)
        shift = 0 if key is None else common_key_shift(key)
        pitches = voice[voice >= 0]
        fitting = [s for s in (shift, shift - 12, shift + 12) if not len(pitches) or (
            pitches.min() + s >= model_range.lowest_pitch and pitches.max() + s <= model_range.highest_pitch)]
        if not fitting:
            raise ValueError(f"soprano {i} (pitches {pitches.min()}-{pitches.max()}) does not fit {model_range} "
                             f"moved to the common key by {shift} semitones or an octave more")
        shifts.append(fitting[0])
    return np.asarray(shifts, np.int32)


def harmonize(generator: PianorollGenerator, rng: jax.Array, soprano: np.ndarray, source: PitchRange,
              model_range: PitchRange) -> tuple[np.ndarray, np.ndarray, int]:
    """Harmonizations [n, T, P(, V)] (at `source`'s pitches; V for a voice-channel model) of sopranos [n, T, P] by a
    `generator` whose model was trained in the common key at `model_range`'s pitches; also the shifts int [n] used
    and the generated cells that moved back outside `source` (dropped)."""
    shifts = common_key_shifts(soprano, source, model_range)
    moved, dropped = transpose_rolls(soprano, shifts, source, model_range)
    assert dropped == 0, "common_key_shifts keeps the soprano inside the model's range"
    rolls = np.asarray(generator.harmonize(rng, moved))  # [n, T, P_model(, V)]
    back, dropped = transpose_rolls(rolls, -shifts, model_range, source)
    return back, shifts, dropped
