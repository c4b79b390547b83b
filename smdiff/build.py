"""`smdiff build`: TFDS's own `tfds build` command, for smdiff's dataset builders (all four, including
the latent dataset).

    smdiff build tfds_builders/melody_windows --config=embedded --data_dir=data/tfds
    smdiff build melody_windows --config=lmd_full --manual_dir=~/lmd --data_dir=data/tfds
    smdiff build tfds_builders/melody_latents --config=embedded --data_dir=data/tfds

Same flags and same code as `tfds build` (tensorflow_datasets.scripts.cli.build); the builders are
registered by importing `tfds_builders`, so they may be named or given as folders. It exists because the
`tfds` entry point of tensorflow-datasets 4.9.10 imports apache_beam at start-up (for its unrelated
convert_format command), and apache-beam requires protobuf < 7, which the pinned TensorFlow stack does
not allow. Where apache-beam is installed, `tfds build ...` with the same arguments works the same.

Quiet by default: TFDS's INFO records and its printout of the built DatasetInfo go to
`<data_dir>/build.log`; `--verbosity=0` keeps them on the terminal.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys

from absl import app
from tensorflow_datasets.scripts.cli import build as tfds_build
from tensorflow_datasets.scripts.cli import cli_utils

import tfds_builders  # noqa: F401  (registers every smdiff builder)
from smdiff import joblog
from smdiff.training.loop_helpers import enable_compilation_cache

_parse_flags = cli_utils.make_flags_parser(tfds_build.Args, description="Build a TFDS dataset (tfds build)")
_DATASET_INFO = "tfds.core.DatasetInfo("


class _InfoToLog(io.TextIOBase):
    """stdout that sends TFDS's printout of a built DatasetInfo (tens of lines, between blank lines) to
    `log` and the rest on to the terminal."""

    def __init__(self, terminal, log):
        self._terminal, self._log = terminal, log
        self._held_newlines = ""  # blank lines that may frame a DatasetInfo printout
        self._in_info = False
        self.diverted = False  # a DatasetInfo printout went to the log

    def write(self, text: str) -> int:
        if text == "\n":
            self._held_newlines += text
            return len(text)
        if text.startswith(_DATASET_INFO):
            self._log.write(self._held_newlines + text)
            self._held_newlines, self._in_info, self.diverted = "", True, True
            return len(text)
        if not self._in_info:
            self._terminal.write(self._held_newlines)
        self._held_newlines, self._in_info = "", False
        self._terminal.write(text)
        return len(text)

    def flush(self) -> None:
        if not self._in_info:
            self._terminal.write(self._held_newlines)
        self._held_newlines = ""
        self._terminal.flush()
        self._log.flush()


def _build(args) -> None:
    log_path = joblog.setup(os.fspath(args.paths.data_dir), "build")
    enable_compilation_cache()  # the latent build encodes with jax
    if log_path is None:
        args.execute()
        return
    terminal = sys.stdout
    with open(log_path, "a") as log, contextlib.redirect_stdout(_InfoToLog(terminal, log)) as stdout:
        args.execute()
    if stdout.diverted:  # end TFDS's last progress line (on stderr), as the printout's blank lines did
        terminal.write("\n")


def cli_main(argv: list[str]) -> None:
    """Parses `argv` (program name first) as `tfds build` does and builds."""
    sys.path.insert(0, ".")  # builder folders are given relative to the working directory, as with tfds
    app.run(_build, argv=argv, flags_parser=_parse_flags)
