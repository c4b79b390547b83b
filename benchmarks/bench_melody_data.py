"""Melody data pipeline throughput: the MIDI path and the embedded-corpus path, with 1 and 2 workers.

  python -m benchmarks.bench_melody_data [--files=1000] [--repeat=3] [--workers=1,2]
      [--paths=folk,score,embedded_parse,embedded_cached] [--windows=4,8,16,32] [--no_append]

What runs is what the TFDS builders run, minus the TFRecord writing: `smdiff.data.songs.iter_midi_songs`
(read MIDI, extract melodies, cut chunks, in the process pool of `smdiff.data.pools`) and
`iter_corpus_songs` (ABC parse with music21 + extraction). Inputs, all real music from the music21
corpus, prepared once under `$SMDIFF_CACHE_DIR/bench_midi`:
  - folk MIDI: folk tunes written as one-track MIDI files (small, monophonic);
  - score MIDI: multi-part scores (Bach chorales and larger works) written as multi-track MIDI files,
    closer to Lakh's multi-track files.
MIDI runs read their files `--repeat` times (3,000 folk files by default), so that the pool's start-up is
a small part of a run. Each measurement runs in a fresh process and reports: wall time, the time to the
first result (the pool's start-up as the consumer sees it), files/s and its ratio to the 1-worker run,
CPU milliseconds per file summed over the main process and every worker (read from /proc: forkserver
workers are not our children, so RUSAGE_CHILDREN misses them), and peak RSS of the main process and of
the largest worker; a second 1-worker run over 4x the files shows whether memory grows with the file
count. The 1-minute load average before each run is in the table: on a shared machine the wall-time
ratio between 1 and 2 workers means little, the CPU time per file still does. The LMD-full projection
uses the 1-worker CPU cost per score-MIDI file.
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
import threading
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


def _children(pid: int) -> list[int]:
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(child) for child in f.read().split()]
    except OSError:  # the process ended while we read
        pass
    return children


def _descendant_usage() -> dict[int, tuple[float, float]]:
    """pid -> (CPU seconds, peak RSS MiB) of every live descendant of this process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    usage, pending = {}, _children(os.getpid())
    while pending:
        pid = pending.pop()
        pending += _children(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/status") as f:
                hwm_kib = next((int(line.split()[1]) for line in f if line.startswith("VmHWM")), 0)
        except (OSError, StopIteration):
            continue
        usage[pid] = ((int(fields[11]) + int(fields[12])) / ticks, hwm_kib / 1024)  # utime + stime
    return usage


class DescendantSampler(threading.Thread):
    """Samples `_descendant_usage` every 50 ms until stopped, keeping each process's last reading.

    Forkserver workers are the server's children, not ours, so RUSAGE_CHILDREN never sees them; the
    sampling period bounds the CPU time missed at the end (at most 50 ms per worker).
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.last: dict[int, tuple[float, float]] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.05):
            self.last.update(_descendant_usage())

    def finish(self) -> tuple[float, float]:
        """(total CPU seconds, largest peak RSS MiB) of the descendants seen."""
        self._done.set()
        self.join()
        return sum(c for c, _ in self.last.values()), max((m for _, m in self.last.values()), default=0.0)


def run_once(path_kind: str, folder: str, files: int, workers: int, repeat: int) -> dict:
    """One measurement in this process: songs through the pipeline, time, CPU time, peak memory.

    `repeat`: MIDI paths read the same `files` files `repeat` times; the embedded path reads
    `files * repeat` tunes. `first_result_seconds` is the pool's start-up as the consumer sees it.
    """
    from smdiff.data import corpus, midi_files, songs
    from smdiff.data.melody import MelodyRules

    tally: collections.Counter = collections.Counter()
    kib_per_file = 0.0
    if path_kind == "embedded":
        tunes = corpus.corpus_tunes(max_tunes=files * repeat)
        stream = songs.iter_corpus_songs(tunes, MelodyRules(stream_bars=True), tally, workers)
    else:
        song_ids = midi_files.list_midi_files(folder)[:files]
        kib_per_file = sum(os.path.getsize(os.path.join(folder, s)) for s in song_ids) / len(song_ids) / 1024
        song_ids = song_ids * repeat
        stream = songs.iter_midi_songs(folder, song_ids, MelodyRules(), tally, workers)
    sampler = DescendantSampler()
    sampler.start()
    cpu_start = time.process_time()
    start = time.perf_counter()
    first_result = None
    for _ in stream:  # kept songs only: the tally counts the skipped ones
        first_result = first_result or time.perf_counter() - start
    seconds = time.perf_counter() - start
    main_cpu = time.process_time() - cpu_start
    worker_cpu, worker_peak = sampler.finish()
    return {
        "seconds": seconds,
        "first_result_seconds": first_result or seconds,
        "cpu_seconds": main_cpu + worker_cpu,
        "songs": tally["songs_read"],
        "melodies": tally["melodies"],
        "chunks": tally["chunks"],
        "kib_per_file": kib_per_file,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_worker_rss_mib": worker_peak,
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


PATH_KINDS = {  # --paths name -> (table label, reader)
    "folk": ("folk MIDI", "midi"),
    "score": ("score MIDI", "midi"),
    "embedded_parse": ("embedded (parse ABC)", "embedded"),
    "embedded_cached": ("embedded (cached)", "embedded"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="folk files (or corpus tunes) per run")
    parser.add_argument("--score_files", type=int, default=40, help="multi-track score MIDI files")
    parser.add_argument("--repeat", type=int, default=3, help="MIDI runs read their files this many times")
    parser.add_argument("--workers", default="1,2", help="pool sizes to measure")
    parser.add_argument("--paths", default="folk,score,embedded_parse,embedded_cached",
                        help=f"which inputs to measure, of {','.join(PATH_KINDS)}")
    parser.add_argument("--windows", default="4,8,16,32",
                        help="window lengths k to count on the whole corpus ('' = skip that table)")
    parser.add_argument("--no_append", action="store_true", help="print only, do not touch RESULTS.md")
    parser.add_argument("--_run_once", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._run_once:
        print(json.dumps(run_once(*json.loads(args._run_once))))
        return

    paths = args.paths.split(",")
    folders = {"folk": str(prepare_folk_midi(args.files)) if "folk" in paths else "",
               "score": str(prepare_score_midi(args.score_files)) if "score" in paths else ""}
    uncached = str(bench_dir() / "uncached_corpus")  # a fresh cache: the embedded path parses ABC
    worker_counts = [int(w) for w in args.workers.split(",")]
    rows = []
    for name in paths:
        label, reader = PATH_KINDS[name]
        files = args.score_files if name == "score" else args.files
        repeat = args.repeat if reader == "midi" else 1
        for workers in worker_counts:
            env = {"SMDIFF_CACHE_DIR": f"{uncached}-{workers}"} if name == "embedded_parse" else None
            load = os.getloadavg()[0]
            full = measure(reader, folders.get(name, ""), files, workers, env, repeat)
            repeated = None  # memory check: 4x the files (not for the slow ABC parse)
            if workers == 1 and name != "embedded_parse":
                repeated = measure(reader, folders.get(name, ""), files, workers, env, repeat * 4)
            rows.append((label, workers, full, repeated, load))
            print(label, workers, full, repeated, f"load {load:.1f}", file=sys.stderr)
    subprocess.run(["rm", "-rf", *[f"{uncached}-{w}" for w in worker_counts]], check=True)

    lines = [
        "| path | workers | files | KiB/file | wall (s) | first result (s) | files/s | vs 1 worker | "
        "CPU ms/file (all processes) | chunks | peak RSS main / worker (MiB) | same, 4x the files | "
        "load (1 min) before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    one_worker_rate = {}
    score_cpu_ms = None
    for label, workers, full, repeated, load in rows:
        rate = full["songs"] / full["seconds"]
        one_worker_rate.setdefault(label, rate if workers == 1 else None)
        speedup = f"{rate / one_worker_rate[label]:.2f}x" if one_worker_rate[label] else "-"
        cpu_ms = 1000 * full["cpu_seconds"] / full["songs"]
        if label == "score MIDI" and workers == 1:
            score_cpu_ms = cpu_ms
        kib = f"{full['kib_per_file']:.1f}" if full["kib_per_file"] else "-"
        repeated_rss = (f"{repeated['peak_rss_mib']:.0f} / {repeated['peak_worker_rss_mib']:.0f}"
                        if repeated else "-")
        lines.append(
            f"| {label} | {workers} | {full['songs']} | {kib} | {full['seconds']:.2f} | "
            f"{full['first_result_seconds']:.2f} | {rate:.1f} | {speedup} | {cpu_ms:.2f} | {full['chunks']} | "
            f"{full['peak_rss_mib']:.0f} / {full['peak_worker_rss_mib']:.0f} | {repeated_rss} | {load:.1f} |"
        )
    if args.windows:
        lines += ["", *embedded_choices(tuple(int(k) for k in args.windows.split(",")))]
    notes = (f"{os.cpu_count()} cores; the load column is the 1-minute load average before each run: "
             "rates scale with workers only when the cores are otherwise idle, so compare CPU ms per "
             "file (main process and every worker, from /proc) when the load is above 0. Wall time "
             "includes the pool's start-up (first result). MIDI runs read their files `--repeat` times. "
             "1-worker runs extract in the main process; the embedded (cached) path extracts in the "
             "main process with any worker count (the pool only parses uncached tunes).\n")
    if score_cpu_ms:
        minutes = LMD_FULL_FILES * score_cpu_ms / 1000 / PROJECTION_CORES / 60
        notes += (f"Projected LMD-full build (176,000 files) on {PROJECTION_CORES} cores at the 1-worker "
                  f"score-MIDI CPU cost ({score_cpu_ms:.1f} ms per file): {minutes:.0f} minutes, if Lakh "
                  "files cost what these multi-track scores cost per file and the pool scales to 16 "
                  "workers as measured here from 1 to 2.")
    command = "python -m benchmarks.bench_melody_data " + " ".join(sys.argv[1:])
    from benchmarks import report

    report.publish("Melody data pipeline (smdiff.data.songs)", command.strip(), lines, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main()
