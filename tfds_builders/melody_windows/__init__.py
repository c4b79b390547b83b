"""`melody_windows`: importing this package registers the builder with TFDS."""
from tfds_builders.melody_windows.melody_windows import MelodyWindows

__all__ = ["MelodyWindows"]
