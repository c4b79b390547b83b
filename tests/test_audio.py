"""Audio rendering: a clear message when FluidSynth or a soundfont is missing, a WAV when present."""
import wave

import pretty_midi
import pytest

from smdiff.evaluation import audio


def _one_note_midi(path):
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=0.5))
    midi.instruments.append(piano)
    midi.write(str(path))
    return str(path)


def test_missing_soundfont_named_by_environment_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SMDIFF_SOUNDFONT", str(tmp_path / "nope.sf2"))
    with pytest.raises(audio.AudioUnavailable, match="does not exist"):
        audio.render(_one_note_midi(tmp_path / "a.mid"), str(tmp_path / "a.wav"))


def test_render_writes_wav_or_says_what_to_install(tmp_path):
    midi_path = _one_note_midi(tmp_path / "a.mid")
    try:
        wav_path = audio.render(midi_path, str(tmp_path / "a.wav"))
    except audio.AudioUnavailable as error:
        assert "apt-get install" in str(error)
        return
    with wave.open(wav_path) as rendered:
        assert rendered.getnframes() > audio.SAMPLE_RATE * 0.4
