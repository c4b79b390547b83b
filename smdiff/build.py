"""`smdiff build`: TFDS's own `tfds build` command, for smdiff's dataset builders.

    smdiff build tfds_builders/melody_windows --config=embedded --data_dir=data/tfds
    smdiff build tfds_builders/melody_windows --config=lmd_full --manual_dir=~/lmd --data_dir=data/tfds

Same flags and same code as `tfds build` (tensorflow_datasets.scripts.cli.build). It exists because the
`tfds` entry point of tensorflow-datasets 4.9.10 imports apache_beam at start-up (for its unrelated
convert_format command), and apache-beam requires protobuf < 7, which the pinned TensorFlow stack does
not allow. Where apache-beam is installed, `tfds build ...` with the same arguments works the same.
"""
from __future__ import annotations

import sys

from absl import app
from tensorflow_datasets.scripts.cli import build as tfds_build
from tensorflow_datasets.scripts.cli import cli_utils

_parse_flags = cli_utils.make_flags_parser(tfds_build.Args, description="Build a TFDS dataset (tfds build)")


def cli_main(argv: list[str]) -> None:
    """Parses `argv` (program name first) as `tfds build` does and builds."""
    sys.path.insert(0, ".")  # builder folders are given relative to the working directory, as with tfds
    app.run(lambda args: args.execute(), argv=argv, flags_parser=_parse_flags)
