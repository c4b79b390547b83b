"""Symbolic music data: corpora, melodies, chunks, piano rolls, splits, and reading built datasets.

note_seq (imported by the readers here) imports pydub for its audio helpers, and pydub warns at import
time that it cannot find ffmpeg. smdiff never decodes audio through pydub (audio comes from
pretty_midi/FluidSynth, smdiff/evaluation/audio.py), so that one warning is turned off before note_seq is
first imported, here, where every process (including corpus-parsing workers) gets it.
"""
import warnings

warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv", category=RuntimeWarning,
                        module="pydub")
