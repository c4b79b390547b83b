"""Optional audio: MIDI -> WAV through FluidSynth and a General MIDI soundfont.

Needs the FluidSynth library (Debian: `apt-get install libfluidsynth3`) and a soundfont (Debian:
`fluid-soundfont-gm`, or any .sf2 named by $SMDIFF_SOUNDFONT). Without them `render` raises
`AudioUnavailable` with a message that says exactly what to install; callers report it and go on.
"""
from __future__ import annotations

import os
import wave

import numpy as np
import pretty_midi

from smdiff.training.paths import run_path

SAMPLE_RATE = 22050
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)


class AudioUnavailable(RuntimeError):
    """FluidSynth or a soundfont is missing."""


def find_soundfont() -> str:
    path = os.environ.get("SMDIFF_SOUNDFONT")
    if path:
        if not os.path.isfile(path):
            raise AudioUnavailable(f"$SMDIFF_SOUNDFONT names {path!r}, which does not exist")
        return path
    for candidate in SOUNDFONT_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    raise AudioUnavailable(
        "no General MIDI soundfont found: install one (Debian: `apt-get install fluid-soundfont-gm`) "
        "or point $SMDIFF_SOUNDFONT at an .sf2 file")


def render(midi_path: str, wav_path: str, soundfont: str | None = None) -> str:
    """Renders a MIDI file to a 16-bit mono WAV file and returns its path (either may be a URL; the
    soundfont is a local file)."""
    soundfont = soundfont or find_soundfont()
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; fails without the C library)
    except ImportError as error:
        raise AudioUnavailable(
            "the FluidSynth library is missing (Debian: `apt-get install libfluidsynth3`): " + str(error)
        ) from error
    with run_path(midi_path).open("rb") as midi:
        waveform = pretty_midi.PrettyMIDI(midi).fluidsynth(fs=SAMPLE_RATE, sf2_path=soundfont)
    peak = np.abs(waveform).max() or 1.0
    samples = (waveform / peak * 0.9 * 32767).astype(np.int16)
    with run_path(wav_path).open("wb") as file, wave.open(file, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return wav_path
