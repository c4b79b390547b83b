"""`melody_chunks`: importing this package registers the builder with TFDS."""
from tfds_builders.melody_chunks.melody_chunks import MelodyChunks

__all__ = ["MelodyChunks"]
