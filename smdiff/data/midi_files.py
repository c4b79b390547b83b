"""Finding and reading MIDI files: a folder (recursively) or the Lakh `lmd_full.tar.gz` archive.

Every file is a song whose id is its path relative to the folder (or its name inside the archive).
A file that cannot be read becomes a `MidiReadError` with a short reason, which the build counts.
"""
from __future__ import annotations

import bisect
import io
import os
import pathlib
import tarfile
from collections.abc import Iterator

import pretty_midi
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


class _TickTimes:
    """Seconds at a tick, computed per lookup from the tempo segments `[(first tick, seconds per tick)]`.

    The same float64 operations as pretty_midi's table (seconds at the segment's first tick + seconds
    per tick * ticks into the segment), so the times are bit-identical; at a segment's first tick both
    segments give the same value.
    """

    def __init__(self, tick_scales: list[tuple[int, float]]):
        self.ticks = [tick for tick, _ in tick_scales]
        self.scales = [scale for _, scale in tick_scales]
        self.seconds = [0.0]
        for i in range(1, len(self.ticks)):
            self.seconds.append(self.seconds[-1] + self.scales[i - 1] * (self.ticks[i] - self.ticks[i - 1]))

    def __getitem__(self, tick: int) -> float:
        i = bisect.bisect_right(self.ticks, tick) - 1
        return self.seconds[i] + self.scales[i] * (tick - self.ticks[i])


class _LookupPrettyMIDI(pretty_midi.PrettyMIDI):
    """PrettyMIDI without its tick -> seconds table, which holds a float64 for every tick up to the last
    event: 0.7-13 M ticks (5-100 MB) for music21-written scores at 10,080 ticks per quarter, which made
    reading such a file memory-bound (two workers barely beat one). Only for reading: the table's other
    users (time_to_tick, adjust_times) are not supported."""

    def _update_tick_to_time(self, max_tick: int) -> None:
        self._PrettyMIDI__tick_to_time = _TickTimes(self._tick_scales)  # pretty_midi indexes it directly

    def tick_to_time(self, tick: int) -> float:
        return self._PrettyMIDI__tick_to_time[int(tick)]


def read_midi(data: bytes, song_id: str) -> music_pb2.NoteSequence:
    """Parses MIDI bytes to a NoteSequence; raises MidiReadError on empty or malformed data."""
    if not data:
        raise MidiReadError("empty_file", song_id)
    if not data.startswith(b"MThd"):
        raise MidiReadError("not_midi", f"{song_id} does not start with a MIDI header")
    try:
        ns = midi_io.midi_to_note_sequence(_LookupPrettyMIDI(io.BytesIO(data)))
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
