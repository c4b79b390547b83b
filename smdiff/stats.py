"""Statistics of a built melody dataset (`melody_chunks` or `melody_windows`), printed and saved as JSON.

  smdiff stats --dataset=melody_windows/embedded --data_dir=data/tfds [--output=stats.json]

Per split: examples, songs, song length (chunks per song: a chunk dataset counts its chunks, a window
dataset the span its windows cover), pitch and duration histograms of the notes, and the build's skip
tally by reason (saved with the dataset at build time). Notes of overlapping windows are counted once
per (song, chunk position). The JSON goes to `--output`, by default `statistics.json` in the dataset's
version folder.
"""
from __future__ import annotations

import collections
import json

import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags

from smdiff import jobflags, joblog
from smdiff.data import tfds_io
from smdiff.evaluation.notes import events_to_notes
from smdiff.training.paths import run_path

FLAGS = jobflags.namespace()
flags.DEFINE_string("dataset", "melody_windows/embedded", "TFDS name/config of a melody dataset.", flag_values=FLAGS)
flags.DEFINE_string("data_dir", "data/tfds", "TFDS data dir holding the built dataset.", flag_values=FLAGS)
flags.DEFINE_string("output", None, "Where to write the JSON (default: in the dataset folder).", flag_values=FLAGS)


def _summary(values: list[int]) -> dict:
    values = np.asarray(values)
    if not len(values):
        return {"count": 0}
    counts = collections.Counter(values.tolist())
    return {
        "count": int(len(values)),
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "max": int(values.max()),
        "histogram": {int(k): counts[k] for k in sorted(counts)},
    }


def split_statistics(examples) -> dict:
    """Statistics of one split from its examples (dicts of numpy values, as `tfds.as_numpy` gives).

    `events` is int [32] (chunks) or int [k, 32] with `start_chunk` (windows).
    """
    seen = set()  # (song, chunk position) already counted
    chunks_per_song: dict[str, int] = collections.defaultdict(int)
    pitches: collections.Counter = collections.Counter()
    durations: collections.Counter = collections.Counter()
    num_examples = 0
    for example in examples:
        num_examples += 1
        song = example["song_id"].decode() if isinstance(example["song_id"], bytes) else example["song_id"]
        events = np.asarray(example["events"]).reshape(-1, 32)  # [chunks, 32]
        start = int(example.get("start_chunk", chunks_per_song[song]))
        chunks_per_song[song] = max(chunks_per_song[song], start + len(events))
        for offset, chunk in enumerate(events):
            if (song, start + offset) in seen:
                continue
            seen.add((song, start + offset))
            notes = events_to_notes(chunk)  # [n, 3] (start, end, pitch)
            pitches.update(notes[:, 2].tolist())
            durations.update((notes[:, 1] - notes[:, 0]).tolist())
    return {
        "examples": num_examples,
        "songs": len(chunks_per_song),
        "distinct_chunks": len(seen),
        "notes": int(sum(pitches.values())),
        "song_length_chunks": _summary(list(chunks_per_song.values())),
        "pitch_histogram": {int(k): pitches[k] for k in sorted(pitches)},
        "duration_histogram_steps": {int(k): durations[k] for k in sorted(durations)},
    }


def dataset_statistics(dataset: str, data_dir: str) -> dict:
    """Statistics of every split of a built melody dataset, with its build tally."""
    builder = tfds.builder(dataset, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(f"{dataset} is not built under {data_dir}: run `tfds build` first")
    if "events" not in builder.info.features:
        raise ValueError(f"{dataset} has no `events` feature: not a melody dataset")
    return {
        "dataset": dataset,
        "data_dir": builder.data_dir,
        "splits": {
            split: split_statistics(tfds.as_numpy(builder.as_dataset(split=split)))
            for split in builder.info.splits
        },
        "build_tally": dict(builder.info.metadata.get("tally", {})) if builder.info.metadata else {},
    }


def format_statistics(stats: dict) -> str:
    """A short human-readable table of `dataset_statistics`."""
    lines = [f"{stats['dataset']} ({stats['data_dir']})",
             f"{'split':12s} {'examples':>9s} {'songs':>7s} {'chunks':>8s} {'notes':>9s} "
             f"{'song length (chunks) min/median/max':>36s}"]
    for split, s in stats["splits"].items():
        length = s["song_length_chunks"]
        span = f"{length.get('min', 0)}/{length.get('median', 0):g}/{length.get('max', 0)}"
        lines.append(f"{split:12s} {s['examples']:9d} {s['songs']:7d} {s['distinct_chunks']:8d} "
                     f"{s['notes']:9d} {span:>36s}")
    for split, s in stats["splits"].items():
        if s["pitch_histogram"]:
            top = max(s["pitch_histogram"], key=s["pitch_histogram"].get)
            common = max(s["duration_histogram_steps"], key=s["duration_histogram_steps"].get)
            lines.append(f"{split}: pitches {min(s['pitch_histogram'])}..{max(s['pitch_histogram'])} "
                         f"(most common {top}); most common duration {common} steps")
    for split, tally in stats["build_tally"].items():
        skips = {k: v for k, v in tally.items()
                 if v and (k.startswith("skipped") or "dropped" in k or "rest" in k)}
        lines.append(f"{split} skips: {json.dumps(skips) if skips else 'none'}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    joblog.setup(tfds_io.dataset_dir(FLAGS.dataset, FLAGS.data_dir), "stats")
    stats = dataset_statistics(FLAGS.dataset, FLAGS.data_dir)
    output = FLAGS.output or str(run_path(stats["data_dir"]) / "statistics.json")
    run_path(output).write_text(json.dumps(stats, indent=1))
    print(format_statistics(stats))
    print(f"Saved {output}")

