"""Run paths as URLs: a local folder or an object-store URL (gs://bucket/run) behind one `epath.Path`.

etils.epath is what Orbax and TFDS use, so checkpoints, metrics and configs of one run go through the
same filesystem layer. A local relative path is made absolute (Orbax asks for absolute directories);
a URL is left as it is (os.path.abspath would turn gs://b/run into <cwd>/gs:/b/run).
"""
import os

from etils import epath


def is_url(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def run_path(path: str | os.PathLike) -> epath.Path:
    """`path` as an epath.Path: a URL unchanged, a local path absolute and with `~` expanded."""
    path = os.fspath(path)
    return epath.Path(path) if is_url(path) else epath.Path(os.path.abspath(os.path.expanduser(path)))
