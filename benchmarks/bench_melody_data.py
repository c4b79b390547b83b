"""Melody data pipeline throughput: the MIDI path and the embedded-corpus path, per core, with peak memory.

  .venv/bin/python -m benchmarks.bench_melody_data [--files=400] [--workers=1,2] [--no_append]

What runs is what the TFDS builders run, minus the TFRecord writing: `smdiff.data.songs.iter_midi_songs`
(read MIDI, extract melodies, cut chunks, in a process pool) and `iter_corpus_songs` (ABC parse with
music21 + extraction). Inputs, all real music from the music21 corpus, prepared once under
`$SMDIFF_CACHE_DIR/bench_midi`:
  - folk MIDI: folk tunes written as one-track MIDI files (small, monophonic);
  - score MIDI: multi-part scores (Bach chorales and larger works) written as multi-track MIDI files,
    closer to Lakh's multi-track files.
Each measurement runs in a fresh process, so peak RSS (ru_maxrss of the process and of its pool workers)
belongs to that run alone; a second 1-worker run over the same files repeated 4 times (the embedded path:
4 times as many tunes) shows whether memory grows with the file count. The LMD-full projection divides
176,000 files by 16 x the 1-worker rate on score MIDI. The load average is recorded: the machine may be
shared, and pool start-up is inside the timed region of the 2-worker rows.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

LMD_FULL_FILES = 176_000
PROJECTION_CORES = 16
SCORE_COMPOSERS = ("bach", "beethoven", "mozart", "haydn", "schumann", "schubert")


def bench_dir() -> pathlib.Path:
    from smdiff.data import corpus

    return corpus.cache_dir().parent / "bench_midi"


def prepare_folk_midi(count: int) -> pathlib.Path:
    """Writes the first `count` corpus tunes (every 3rd tune, across collections) as MIDI files."""
    from smdiff.data import corpus, melody

    folder = bench_dir() / "folk"
    if len(list(folder.glob("*.mid"))) >= count:
        return folder
    tunes = corpus.corpus_tunes()[::3][:count]
    for parsed in corpus.parse_tunes(tunes):
        if parsed.note_sequence is not None:
            name = parsed.song_id.replace("/", "_")
            melody.note_sequence_to_midi_file(parsed.note_sequence, folder / f"{name}.mid")
    return folder


def prepare_score_midi(count: int) -> pathlib.Path:
    """Writes `count` multi-part scores of the music21 corpus as multi-track MIDI files."""
    import music21

    folder = bench_dir() / "scores"
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.mid"))) >= count:
        return folder
    paths = [p for composer in SCORE_COMPOSERS for p in sorted(music21.corpus.getComposer(composer))
             if str(p).endswith((".mxl", ".xml", ".musicxml", ".krn"))]
    step = max(1, len(paths) // count)
    written = len(list(folder.glob("*.mid")))
    for path in paths[::step]:
        if written >= count:
            break
        target = folder / f"{pathlib.Path(path).parent.name}_{pathlib.Path(path).stem}.mid"
        if target.exists():
            continue
        try:
            score = music21.converter.parse(path)
            if len(score.parts) < 2:
                continue
            score.write("midi", fp=str(target))
            written += 1
        except Exception as error:  # a corpus file music21 cannot write as MIDI: use another
            print(f"skipping {path}: {type(error).__name__}", file=sys.stderr)
    return folder


def run_once(path_kind: str, folder: str, files: int, workers: int, repeat: int) -> dict:
    """One measurement in this process: songs through the pipeline, time, peak memory.

    `repeat`: MIDI paths read the same `files` files `repeat` times; the embedded path reads
    `files * repeat` tunes.
    """
    from smdiff.data import corpus, midi_files, songs
    from smdiff.data.melody import MelodyRules

    tally: collections.Counter = collections.Counter()
    kib_per_file = 0.0
    start = time.perf_counter()
    if path_kind == "embedded":
        tunes = corpus.corpus_tunes(max_tunes=files * repeat)
        for _ in songs.iter_corpus_songs(tunes, MelodyRules(stream_bars=True), tally, workers):
            pass
    else:
        song_ids = midi_files.list_midi_files(folder)[:files]
        kib_per_file = sum(os.path.getsize(os.path.join(folder, s)) for s in song_ids) / len(song_ids) / 1024
        song_ids = song_ids * repeat
        for _ in songs.iter_midi_songs(folder, song_ids, MelodyRules(), tally, workers):
            pass
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "songs": tally["songs_read"],
        "melodies": tally["melodies"],
        "chunks": tally["chunks"],
        "kib_per_file": kib_per_file,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def embedded_choices(window_options: tuple[int, ...]) -> list[str]:
    """Tunes, chunks and windows (stride 1) of the whole embedded corpus under each reading of meter."""
    import numpy as np

    from smdiff.data import corpus, songs
    from smdiff.data.chunks import song_windows
    from smdiff.data.melody import MelodyRules

    tunes = corpus.corpus_tunes()
    lines = [
        "| embedded reading | tunes kept | 2-bar chunks (non-rest) | median chunks per tune | "
        + " | ".join(f"windows k={k}" for k in window_options) + " |",
        "|---|---|---|---|" + "---|" * len(window_options),
    ]
    for name, rules in [("Magenta rules: 16-step bars only", MelodyRules()),
                        ("continuous stream of 16-step bars", MelodyRules(stream_bars=True))]:
        tally: collections.Counter = collections.Counter()
        windows = collections.Counter()
        lengths = []
        for song in songs.iter_corpus_songs(tunes, rules, tally):
            lengths.append(sum(len(chunks) for chunks in song.melodies))
            for chunks in song.melodies:
                for k in window_options:
                    windows[k] += sum(1 for _ in song_windows(chunks, k, 1))
        lines.append(
            f"| {name} | {tally['songs_kept']} / {tally['songs_read']} | {tally['chunks']} | "
            f"{np.median(lengths):g} | " + " | ".join(str(windows[k]) for k in window_options) + " |"
        )
        print(name, dict(tally), file=sys.stderr)
    return lines


def measure(path_kind: str, folder: str, files: int, workers: int, env: dict | None = None,
            repeat: int = 1) -> dict:
    """Runs `run_once` in a fresh process and returns its result."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_melody_data", "--_run_once",
         json.dumps([path_kind, folder, files, workers, repeat])],
        check=True, capture_output=True, text=True, env={**os.environ, **(env or {})},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=400, help="files (or tunes) per full run")
    parser.add_argument("--score_files", type=int, default=60, help="multi-track score MIDI files")
    parser.add_argument("--workers", default="1,2", help="pool sizes to measure")
    parser.add_argument("--windows", default="4,8,16,32", help="window lengths k to count on the corpus")
    parser.add_argument("--no_append", action="store_true", help="print only, do not touch RESULTS.md")
    parser.add_argument("--_run_once", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._run_once:
        print(json.dumps(run_once(*json.loads(args._run_once))))
        return

    folk = str(prepare_folk_midi(args.files))
    scores = str(prepare_score_midi(args.score_files))
    uncached = str(bench_dir() / "uncached_corpus")  # a fresh cache: the embedded path parses ABC
    load_before = os.getloadavg()[0]
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        for kind, folder, env in [
            ("folk MIDI", folk, None),
            ("score MIDI", scores, None),
            ("embedded (parse ABC)", "", {"SMDIFF_CACHE_DIR": f"{uncached}-{workers}"}),
            ("embedded (cached)", "", None),  # the default cache, which a build filled
        ]:
            path_kind = "embedded" if kind.startswith("embedded") else "midi"
            files = args.score_files if kind == "score MIDI" else args.files
            full = measure(path_kind, folder, files, workers, env)
            repeated = None  # memory check: 4x the files (not for the slow ABC parse)
            if workers == 1 and kind != "embedded (parse ABC)":
                repeated = measure(path_kind, folder, files, workers, env, repeat=4)
            rows.append((kind, workers, full, repeated))
            print(kind, workers, full, repeated, file=sys.stderr)
    subprocess.run(["rm", "-rf", *[f"{uncached}-{w}" for w in args.workers.split(",")]], check=True)
    load_after = os.getloadavg()[0]

    lines = [
        "| path | workers | files | KiB/file | files/s | files/s per core | melodies/s per core | chunks | "
        "peak RSS main / worker (MiB) | same, 4x the files |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    score_rate = None
    for kind, workers, full, repeated in rows:
        rate = full["songs"] / full["seconds"]
        per_core = rate / workers
        if kind == "score MIDI" and workers == 1:
            score_rate = per_core
        kib = f"{full['kib_per_file']:.1f}" if full["kib_per_file"] else "-"
        repeated_rss = (f"{repeated['peak_rss_mib']:.0f} / {repeated['peak_worker_rss_mib']:.0f}"
                        if repeated else "-")
        lines.append(
            f"| {kind} | {workers} | {full['songs']} | {kib} | "
            f"{rate:.1f} | {per_core:.1f} | "
            f"{full['melodies'] / full['seconds'] / workers:.1f} | {full['chunks']} | "
            f"{full['peak_rss_mib']:.0f} / {full['peak_worker_rss_mib']:.0f} | {repeated_rss} |"
        )
    lines += ["", *embedded_choices(tuple(int(k) for k in args.windows.split(",")))]
    notes = (f"Load average (1 min) {load_before:.1f} before, {load_after:.1f} after the runs, on "
             f"{os.cpu_count()} cores. 2-worker rows include pool start-up and share the cores with that "
             "load; the embedded (cached) path extracts in the main process (the pool only parses "
             "uncached tunes), so its 2-worker row runs on one core.\n")
    if score_rate:
        hours = LMD_FULL_FILES / (score_rate * PROJECTION_CORES) / 3600
        notes += (f"Projected LMD-full build (176,000 files) on {PROJECTION_CORES} cores at the 1-worker "
                 f"score-MIDI rate ({score_rate:.1f} files/s per core): {hours * 60:.0f} minutes "
                 f"({'under' if hours < 1 else 'over'} the one-hour goal), if Lakh files cost what these "
                 f"multi-track scores ({rows[1][2]['kib_per_file']:.1f} KiB per file) cost; the rate scales "
                 "with file size, which this run did not measure on Lakh.")
    command = "python -m benchmarks.bench_melody_data " + " ".join(sys.argv[1:])
    if args.no_append:
        print("\n".join(lines + ["", notes]))
        return
    from benchmarks import report

    report.append_section("Melody data pipeline (smdiff.data.songs)", command.strip(), lines, notes)


if __name__ == "__main__":
    main()
