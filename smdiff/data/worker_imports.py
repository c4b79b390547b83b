"""Preloaded first in the ingest forkserver (`smdiff.data.pools`): note_seq's modules without its package
`__init__`.

note_seq's `__init__` imports every note_seq module, including its notebook and audio helpers (pandas,
bokeh, librosa): 1.3 s of CPU per process, 0.19 s without them (measured with `-X importtime`), and
ingest uses only `midi_io`, `sequences_lib` and the protobufs. The forkserver exists only to run ingest
workers, so registering the package without running its `__init__` there is safe; the names our
modules import from it (`from note_seq import midi_io`, `note_seq.protobuf.music_pb2`) are submodules,
which import normally. The main process is not touched.
"""
import importlib.util
import sys
import types


def register_note_seq_package() -> None:
    """Registers an empty `note_seq` package (its real search path) unless note_seq is imported."""
    if "note_seq" in sys.modules:
        return
    spec = importlib.util.find_spec("note_seq")
    package = types.ModuleType("note_seq")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["note_seq"] = package


register_note_seq_package()
