"""Finding and reading MIDI files: a folder (recursively) or the Lakh `lmd_full.tar.gz` archive.

Every file is a song whose id is its path relative to the folder (or its name inside the archive).
A file that cannot be read becomes a `MidiReadError` with a short reason, which the build counts.
"""
from __future__ import annotations

import os
import pathlib
import tarfile
from collections.abc import Iterator

from note_seq import midi_io
from note_seq.protobuf import music_pb2

MIDI_SUFFIXES = (".mid", ".midi", ".kar")
LMD_FULL_URL = "http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz"


class MidiReadError(ValueError):
    """A MIDI file that cannot be read; `reason` is a short key for the skip tally."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def is_midi_name(name: str) -> bool:
    return name.lower().endswith(MIDI_SUFFIXES)


def list_midi_files(folder: str | os.PathLike) -> list[str]:
    """Song ids (paths relative to `folder`, sorted) of every MIDI-named file under it."""
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"MIDI folder {root} does not exist or is not a folder")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and is_midi_name(p.name))


def read_midi(data: bytes, song_id: str) -> music_pb2.NoteSequence:
    """Parses MIDI bytes to a NoteSequence; raises MidiReadError on empty or malformed data."""
    if not data:
        raise MidiReadError("empty_file", song_id)
    if not data.startswith(b"MThd"):
        raise MidiReadError("not_midi", f"{song_id} does not start with a MIDI header")
    try:
        ns = midi_io.midi_to_note_sequence(data)
    except Exception as error:  # pretty_midi/mido raise many types on corrupt files
        raise MidiReadError("corrupt_midi", f"{song_id}: {type(error).__name__}: {error}") from error
    ns.id = ns.filename = song_id
    return ns


def lmd_archive_or_folder(manual_dir: str | os.PathLike) -> pathlib.Path:
    """Finds LMD-full in TFDS's manual dir: the extracted `lmd_full/` folder or `lmd_full.tar.gz`."""
    manual = pathlib.Path(manual_dir)
    for candidate in (manual / "lmd_full", manual / "lmd_full.tar.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"LMD-full not found in the manual dir {manual}. Download {LMD_FULL_URL} (about 1.7 GB) and put "
        f"lmd_full.tar.gz (or the lmd_full/ folder it extracts to) in {manual}, or pass "
        "--manual_dir=<folder holding it> to `tfds build`."
    )


def list_archive_midi(archive: str | os.PathLike) -> list[str]:
    """Names (sorted) of the MIDI members of a .tar.gz, read as a stream."""
    with tarfile.open(archive, "r|gz") as tar:
        return sorted(m.name for m in tar if m.isfile() and is_midi_name(m.name))


def iter_archive_midi(archive: str | os.PathLike, wanted: set[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of the wanted (default: all MIDI) members of a .tar.gz, in archive order,
    read as a stream."""
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if member.isfile() and (member.name in wanted if wanted is not None else is_midi_name(member.name)):
                yield member.name, tar.extractfile(member).read()


def iter_midi(source: str | os.PathLike) -> Iterator[tuple[str, bytes]]:
    """(song id, bytes) of every MIDI file of a folder (sorted) or a .tar.gz (archive order)."""
    source = pathlib.Path(source)
    if source.is_dir():
        for song_id in list_midi_files(source):
            yield song_id, (source / song_id).read_bytes()
    elif source.is_file() and tarfile.is_tarfile(source):
        yield from iter_archive_midi(source)
    else:
        raise FileNotFoundError(f"no MIDI folder or tar archive at {os.fspath(source)!r}")
