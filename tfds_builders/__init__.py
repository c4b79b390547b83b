"""smdiff's TFDS dataset builders, registered with TFDS in one place: importing this package registers all
of them (`smdiff build` does), so `tfds.builder("melody_windows/embedded", ...)` and
`smdiff build melody_windows --config=embedded` find them by name.

Builders depend on the smdiff library (smdiff/data, smdiff/codec, smdiff/configurables for the VAE of
melody_latents); the library never imports a builder: jobs read built datasets from their files
(`smdiff.data.tfds_io`).
"""
from tfds_builders.melody_chunks import MelodyChunks
from tfds_builders.melody_latents import MelodyLatents
from tfds_builders.melody_windows import MelodyWindows
from tfds_builders.pianorolls import Pianorolls

BUILDERS = {"melody_chunks": MelodyChunks, "melody_windows": MelodyWindows, "melody_latents": MelodyLatents,
            "pianorolls": Pianorolls}
