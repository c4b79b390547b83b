"""Quiet jobs: a job prints its own progress (stage lines, progress bars, the metrics that matter) and
sends the INFO records of the libraries under it (absl, Orbax, TFDS, smdiff's own) to `<folder>/<job>.log`.

Warnings and errors still reach the terminal. `--verbosity` (any value) keeps every record on the
terminal as before. TensorFlow's C++ INFO lines at import (oneDNN, CPU features) are printed by absl's
C++ logging before it is initialised, which no environment variable of TensorFlow 2.21 silences:
`import_tensorflow_quietly`, which the CLI calls before a job imports TensorFlow, imports it with the
process's stderr pointed at a buffer whose text `setup` then writes to the job's log.

The folder may be a URL (gs://bucket/run): Python's logging writes to a local file, so the records go to
a local file first and `finish` (which the CLI calls when the job returns or raises) appends them to
`<folder>/<job>.log`. Not at interpreter exit: by then gcsfs has closed its HTTP session. A killed
process leaves them in the local file, whose path the first record names. Processes of one job that
finish at the same moment may each rewrite the object with only their own addition (no append in an
object store): then one process's records are missing there, but still in its local file.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence

from absl import flags
from absl import logging as absl_logging

from smdiff.training.paths import is_url, run_path

# TFDS 4.9.10 reads `.dtype` itself when decoding a ZLIB-encoded Tensor feature (tensor_feature.py) and
# then warns that `.dtype` is deprecated: nothing smdiff's code can change, so it goes to the log.
_LIBRARY_OWN_DEPRECATIONS = ("`FeatureConnector.dtype` is deprecated",)
_native_import_log = ""
_to_copy: list[tuple[logging.FileHandler, str, object]] = []  # (handler, local log, its URL) for `finish`


def import_tensorflow_quietly(argv: Sequence[str]) -> None:
    """Imports TensorFlow with file descriptor 2 captured (kept for the job's log), unless `argv` asks
    for `--verbosity`."""
    global _native_import_log
    if any(arg.startswith("--verbosity") for arg in argv):
        return
    with tempfile.TemporaryFile(mode="w+b") as buffer:
        saved = os.dup(2)
        os.dup2(buffer.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        buffer.seek(0)
        _native_import_log = buffer.read().decode(errors="replace")


class _DropLibraryDeprecations(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in _LIBRARY_OWN_DEPRECATIONS)


def setup(folder: str | None, job: str) -> str | None:
    """Sends INFO records to `<folder>/<job>.log` and only warnings on to the terminal; returns the path
    of the local file the records go to (None when `--verbosity` was given: then everything stays on the
    terminal)."""
    if folder is None or ("verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present):
        return None
    if is_url(folder):
        path = tempfile.NamedTemporaryFile(prefix=f"smdiff-{job}-", suffix=".log", delete=False).name
    else:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{job}.log")
    if _native_import_log:
        with open(path, "a") as log:
            log.write(_native_import_log)
    handler = logging.FileHandler(path)
    handler.setFormatter(absl_logging.PythonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    terminal = absl_logging.get_absl_handler()
    terminal.setLevel(logging.WARNING)
    terminal.addFilter(_DropLibraryDeprecations())
    if is_url(folder):
        _to_copy.append((handler, path, run_path(folder) / f"{job}.log"))
        absl_logging.info("records of this %s job are kept in %s until it ends", job, path)
    return path


def finish() -> None:
    """Appends the records of a job whose folder is a URL to `<folder>/<job>.log` (an object store cannot
    append in place: read, add, rewrite); nothing to do for a local folder."""
    while _to_copy:
        handler, local, target = _to_copy.pop()
        logging.getLogger().removeHandler(handler)
        handler.close()
        text = run_path(local).read_text()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((target.read_text() if target.exists() else "") + text)
        os.remove(local)
