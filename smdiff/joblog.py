"""Quiet jobs: a job prints its own progress (stage lines, progress bars, the metrics that matter) and
sends the INFO records of the libraries under it (absl, Orbax, TFDS, smdiff's own) to `<folder>/<job>.log`.

Warnings and errors still reach the terminal. `--verbosity=0` (or higher) keeps every record on the
terminal as before. TensorFlow's C++ INFO lines (oneDNN, CPU features) are silenced in `quiet_native_logs`,
which the CLI calls before anything imports TensorFlow.
"""
from __future__ import annotations

import logging
import os

from absl import flags
from absl import logging as absl_logging


def quiet_native_logs() -> None:
    """TensorFlow's C++ logging: warnings and errors only, unless the caller's environment says otherwise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def setup(folder: str | None, job: str) -> str | None:
    """Sends INFO records to `<folder>/<job>.log` and only warnings on to the terminal; returns the log's
    path (None when `--verbosity` was given: then everything stays on the terminal)."""
    if folder is None or ("verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present):
        return None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{job}.log")
    handler = logging.FileHandler(path)
    handler.setFormatter(absl_logging.PythonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.get_absl_handler().setLevel(logging.WARNING)
    return path
