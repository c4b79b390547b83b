"""`melody_latents`: importing this package registers the builder with TFDS."""
from tfds_builders.melody_latents.melody_latents import MelodyLatents

__all__ = ["MelodyLatents"]
