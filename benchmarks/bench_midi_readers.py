"""symusic (C++ MIDI parser) vs the current reader (note_seq over pretty_midi): speed and note-for-note agreement.

  python -m benchmarks.bench_midi_readers [--folders=tests/data/midi,<bench folk>,<bench scores>] [--no_append]

symusic is only a benchmark dependency of smdiff (the `bench` extra: `pip install -e '.[bench]'`).
Each file is read by both; symusic's notes are converted the way note_seq converts pretty_midi's: seconds from the tempo map
(float64), and pretty_midi's pairing rule, under which a note-off ends every open note of its pitch
(symusic pairs note-offs first-in first-out, which differs when a pitch is struck again before it is
released). A file agrees when its notes (program, drum flag, pitch, velocity, start and end within
1 microsecond), time signatures and tempos match as multisets. For a file that differs, the script
counts, with mido, the note-ons struck while the same pitch was still sounding on that channel and
track: the case where the pairing rules part.
"""
from __future__ import annotations

import argparse
import collections
import pathlib
import sys
import time

import numpy as np

TOLERANCE_SECONDS = 1e-6


def symusic_notes(data: bytes) -> tuple[list, list, list]:
    """(notes, time signatures, tempos) of a MIDI file read by symusic, in seconds, pretty_midi's pairing."""
    import symusic

    score = symusic.Score.from_midi(data)
    tempos = score.tempos.numpy()
    tempo_ticks, mspq = list(tempos["time"].astype(np.int64)), list(tempos["mspq"].astype(np.float64))
    if not tempo_ticks or tempo_ticks[0] != 0:
        tempo_ticks, mspq = [0, *tempo_ticks], [500_000.0, *mspq]
    scale = np.asarray(mspq) / (1e6 * score.ticks_per_quarter)  # seconds per tick from each tempo change
    starts = np.concatenate([[0.0], np.cumsum(np.diff(tempo_ticks) * scale[:-1])])

    def seconds(ticks: np.ndarray) -> np.ndarray:
        segment = np.searchsorted(tempo_ticks, ticks, side="right") - 1
        return starts[segment] + (ticks - np.asarray(tempo_ticks)[segment]) * scale[segment]

    notes = []
    for track in score.tracks:
        arrays = track.notes.numpy()
        start = arrays["time"].astype(np.int64)
        end = start + arrays["duration"].astype(np.int64)
        pitch = arrays["pitch"].astype(np.int64)
        for p in np.unique(pitch):  # pretty_midi: a note ends at the first note-off of its pitch after it
            same = pitch == p
            offs = np.unique(end[same])
            end[same] = offs[np.searchsorted(offs, start[same], side="right")]
        notes += [(track.program, track.is_drum, int(p), int(v), s, e) for p, v, s, e in
                  zip(pitch, arrays["velocity"], seconds(start), seconds(end))]
    signatures = score.time_signatures.numpy()
    meters = list(zip(seconds(signatures["time"].astype(np.int64)), signatures["numerator"].tolist(),
                      signatures["denominator"].tolist()))
    qpms = [6e7 / m for m in mspq]
    return notes, meters, list(zip(seconds(np.asarray(tempo_ticks)), qpms))


def _float(x):
    """numpy and protobuf scalars as Python numbers, so that rows compare and sort alike."""
    return float(x) if isinstance(x, (float, np.floating)) else x


def note_seq_notes(data: bytes, song_id: str) -> tuple[list, list, list]:
    from smdiff.data import midi_files

    ns = midi_files.read_midi(data, song_id)
    notes = [(n.program, n.is_drum, n.pitch, n.velocity, n.start_time, n.end_time) for n in ns.notes]
    return (notes, [(t.time, t.numerator, t.denominator) for t in ns.time_signatures],
            [(t.time, t.qpm) for t in ns.tempos])


def _same(a: list, b: list) -> bool:
    """Equal as multisets: sorted rows with equal integer fields and times within TOLERANCE_SECONDS."""
    if len(a) != len(b):
        return False
    for row_a, row_b in zip(sorted(a), sorted(b)):
        for x, y in zip(row_a, row_b):
            if x != y and not (isinstance(x, float) and abs(x - float(y)) <= TOLERANCE_SECONDS):
                return False
    return True


def _rounded(rows: list) -> collections.Counter:
    return collections.Counter(tuple(round(float(x), 4) if isinstance(x, float) else x for x in row) for row in rows)


def restruck_notes(path: pathlib.Path) -> int:
    """Note-ons struck while the same pitch still sounds on the same channel and track (mido)."""
    import mido

    count = 0
    for track in mido.MidiFile(path).tracks:
        sounding = collections.Counter()
        for event in track:
            if event.type == "note_on" and event.velocity > 0:
                count += sounding[(event.channel, event.note)] > 0
                sounding[(event.channel, event.note)] += 1
            elif event.type in ("note_on", "note_off"):
                sounding[(event.channel, event.note)] = 0  # pretty_midi: the note-off ends them all
    return count


def main() -> None:
    from benchmarks import bench_melody_data, report
    from smdiff.data import midi_files

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ",".join(["tests/data/midi", str(bench_melody_data.bench_dir() / "folk"),
                        str(bench_melody_data.bench_dir() / "scores")])
    parser.add_argument("--folders", default=default, help="MIDI folders to read")
    parser.add_argument("--no_append", action="store_true", help="print only, do not touch RESULTS.md")
    args = parser.parse_args()

    lines = ["| folder | files | KiB/file | note_seq ms/file | symusic ms/file | speed-up | files agreeing | "
             "notes only note_seq / only symusic | re-struck notes in differing files |",
             "|---|---|---|---|---|---|---|---|---|"]
    differing = []
    import symusic  # noqa: F401  (imported before the timed reads)
    for folder in args.folders.split(","):
        root = pathlib.Path(folder)
        files = [(song_id, (root / song_id).read_bytes()) for song_id in midi_files.list_midi_files(root)]
        timings = {}
        readings = {}
        for name, read in [("note_seq", note_seq_notes), ("symusic", lambda data, _: symusic_notes(data))]:
            start = time.process_time()
            readings[name] = [read(data, song_id) for song_id, data in files]
            timings[name] = 1000 * (time.process_time() - start) / len(files)
        agree, only_a, only_b, restruck = 0, 0, 0, 0
        for (song_id, _), a, b in zip(files, readings["note_seq"], readings["symusic"]):
            if all(_same([tuple(map(_float, r)) for r in x], [tuple(map(_float, r)) for r in y])
                   for x, y in zip(a, b)):
                agree += 1
                continue
            only_a += sum((_rounded(a[0]) - _rounded(b[0])).values())
            only_b += sum((_rounded(b[0]) - _rounded(a[0])).values())
            restruck += restruck_notes(root / song_id)
            differing.append(f"{root.name}/{song_id}")
        kib = sum(len(data) for _, data in files) / len(files) / 1024
        lines.append(f"| {root.name} | {len(files)} | {kib:.1f} | {timings['note_seq']:.3f} | "
                     f"{timings['symusic']:.3f} | {timings['note_seq'] / timings['symusic']:.0f}x | "
                     f"{agree} / {len(files)} | {only_a} / {only_b} | {restruck} |")
        print(lines[-1], file=sys.stderr)
    notes = ("CPU time per file of reading alone (no melody extraction), one process. Differing files: "
             + (", ".join(differing) or "none") + ".")
    report.publish("MIDI readers: symusic vs note_seq/pretty_midi", "python -m benchmarks.bench_midi_readers "
                   + " ".join(sys.argv[1:]), lines, notes, append=not args.no_append)


if __name__ == "__main__":
    main()
