"""Binary piano-roll segments (Atassi 2023): Bach chorales from music21, Lakh MIDI, or a MIDI folder."""
from tfds_builders.pianorolls.pianorolls import Pianorolls

__all__ = ["Pianorolls"]
