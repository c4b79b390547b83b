"""Key estimation (Krumhansl-Kessler profiles) and the pitch classes a key admits."""
from __future__ import annotations

import dataclasses

import numpy as np

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# Minor admits the natural, harmonic and melodic forms: raised 6th and 7th are in key.
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 9, 10, 11)
MODES = ("major", "minor")
COMMON_TONICS = {"major": 0, "minor": 9}  # the common key: C major, A minor (same key signature)


@dataclasses.dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11, 0 = C
    mode: str  # "major" or "minor"

    def transposed(self, semitones: int) -> "Key":
        return Key((self.tonic + semitones) % 12, self.mode)

    def in_key(self) -> np.ndarray:
        """bool [12]: which pitch classes belong to the key."""
        mask = np.zeros(12, bool)
        scale = _MAJOR_SCALE if self.mode == "major" else _MINOR_SCALE
        mask[[(self.tonic + degree) % 12 for degree in scale]] = True
        return mask


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Duration-weighted pitch-class distribution float [12] of a note array [n, 3] (zeros if empty)."""
    notes = np.asarray(notes).reshape(-1, 3)
    weights = np.bincount(notes[:, 2] % 12, weights=notes[:, 1] - notes[:, 0], minlength=12)
    total = weights.sum()
    return weights / total if total > 0 else weights


def estimate_key(notes: np.ndarray) -> Key:
    """The major or minor key whose profile best correlates with the notes' pitch-class histogram."""
    histogram = pitch_class_histogram(notes)
    if not histogram.any():
        raise ValueError("cannot estimate the key of an empty note array")
    best = None
    for mode, profile in zip(MODES, (_MAJOR_PROFILE, _MINOR_PROFILE)):
        for tonic in range(12):
            score = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
            if best is None or score > best[0]:
                best = (score, Key(tonic, mode))
    return best[1]


def common_key_shift(key: Key) -> int:
    """Semitones in [-6, 5] (the smallest move) that take `key` to the common key: C major or A minor."""
    return (COMMON_TONICS[key.mode] - key.tonic + 6) % 12 - 6
