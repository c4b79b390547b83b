"""Two `smdiff evaluate` outputs side by side: every Table 1 cell before -> after, and the frame pairs that
involve an empty frame (the pairs the OA metric's empty-frame rule decides), per row and task.

    python -m benchmarks.compare_table1 --before=/tmp/demo_before/evaluation --after=/tmp/demo_after/evaluation \\
        --title="Table 1 before/after ..." --note="what differs between the two runs"

Reads each folder's table1.json; appends a section to RESULTS.md (`--no_append`: print only).
"""
from __future__ import annotations

import json
import os
import shlex
import sys

from absl import app, flags

from benchmarks import report

flags.DEFINE_string("before", None, "evaluation folder (with table1.json) of the first run")
flags.DEFINE_string("after", None, "evaluation folder (with table1.json) of the second run")
flags.DEFINE_string("title", "Table 1 before and after", "section title")
flags.DEFINE_string("note", "", "text under the table: what the two runs are")
flags.DEFINE_bool("append", True, "append the section to RESULTS.md")

ROW_ORDER = ("Train", "Test", "Diffusion", "Autoregression (MDN)", "Interpolation", "N(0,I) prior")
TASKS = ("unconditional", "infilling")


def _cells(report_: dict | None) -> list[float | None]:
    if report_ is None:
        return [None] * 4
    return [*report_["table"]["pitch"], *report_["table"]["duration"]]


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _frame_pairs(report_: dict | None) -> str:
    if report_ is None or "frame_pairs" not in report_:
        return "-"
    pairs = report_["frame_pairs"]
    return f"{pairs['one_empty']} + {pairs['both_empty']} of {pairs['pairs']}"


def comparison_lines(before: dict, after: dict) -> list[str]:
    """Markdown: one line per row and task, each cell 'before -> after' (2 decimals; one value when equal),
    the last the frame pairs with one / two empty frames."""
    header = ["setting", "task", "pitch C", "pitch Var", "dur. C", "dur. Var", "empty-frame pairs (one + both of all)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = [row for row in ROW_ORDER if row in before or row in after]
    for row in rows:
        for task in TASKS:
            old, new = before.get(row, {}).get(task), after.get(row, {}).get(task)
            if old is None and new is None:
                continue
            cells = [_text(a) if _text(a) == _text(b) else f"{_text(a)} -> {_text(b)}"
                     for a, b in zip(_cells(old), _cells(new))]
            pairs = [_frame_pairs(old), _frame_pairs(new)]
            cells.append(pairs[1] if pairs[0] == pairs[1] else " -> ".join(pairs))
            lines.append("| " + " | ".join([row, task, *cells]) + " |")
    return lines


def main(argv) -> None:
    del argv
    loaded = []
    for folder in (flags.FLAGS.before, flags.FLAGS.after):
        if not folder:
            raise app.UsageError("--before and --after are required")
        with open(os.path.join(folder, "table1.json")) as f:
            loaded.append(json.load(f))
    arguments = [argument for argument in sys.argv[1:] if not argument.startswith("--note")]  # the note follows
    command = shlex.join(["python", "-m", "benchmarks.compare_table1", *arguments])
    report.publish(flags.FLAGS.title, command, comparison_lines(*loaded), flags.FLAGS.note, flags.FLAGS.append)


if __name__ == "__main__":
    app.run(main)
