"""The paper's Table 1: Consistency and Variance of pitch and duration OA, per generator and task.

Input is a nested dict `results[row][task] = {"pitch": (C, Var), "duration": (C, Var)}`; a task a row
cannot do (the MDN cannot infill) is simply absent and shows as "-". Cells may carry their bootstrap
intervals ('0.93 (0.91-0.95)').
"""
from __future__ import annotations

import json

from smdiff.training.paths import run_path

TASKS = ("unconditional", "infilling")
ROW_ORDER = ("Train", "Test", "Diffusion", "Autoregression (MDN)", "Interpolation", "N(0,I) prior")

# The paper's Table 1, for comparison beside measured rows: row -> task -> (pitch C, Var, dur C, Var).
PAPER_TABLE_1 = {
    "Train": {task: (1.00, 1.00, 1.00, 1.00) for task in TASKS},
    "Test": {task: (1.00, 0.96, 1.00, 0.91) for task in TASKS},
    "Diffusion": {"unconditional": (0.99, 0.90, 0.96, 0.92), "infilling": (0.97, 0.87, 0.97, 0.80)},
    "Autoregression (MDN)": {"unconditional": (0.93, 0.68, 0.93, 0.76)},
    "Interpolation": {"unconditional": (0.85, 0.23, 0.91, 0.34), "infilling": (0.94, 0.78, 0.96, 0.80)},
    "N(0,I) prior": {"unconditional": (0.84, 0.19, 0.90, 0.67), "infilling": (0.89, 0.19, 0.94, 0.54)},
}


def _cell(value: float, interval: tuple[float, float] | None = None) -> str:
    return f"{value:.2f}" if interval is None else f"{value:.2f} ({interval[0]:.2f}-{interval[1]:.2f})"


def _cells(metrics: dict | None, intervals: dict | None = None) -> list[str]:
    if metrics is None:
        return ["-"] * 4
    return [_cell(value, None if intervals is None else intervals[feature][name])
            for feature in ("pitch", "duration") for name, value in zip(("C", "Var"), metrics[feature])]


def _ordered_rows(results: dict) -> list[str]:
    known = [row for row in ROW_ORDER if row in results]
    return known + sorted(row for row in results if row not in ROW_ORDER)


def to_markdown(results: dict, title: str = "", intervals: dict | None = None,
                tasks: tuple[str, ...] = TASKS) -> str:
    """The table of `tasks`; with `intervals` (results' layout, each cell's feature -> {'C': (low, high),
    'Var': ...}) every cell shows its interval beside the value, e.g. '0.93 (0.91-0.95)'."""
    header = ["setting"] + [f"{task[:6]}. {feature} {stat}" for task in tasks
                            for feature in ("pitch", "dur.") for stat in ("C", "Var")]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in _ordered_rows(results):
        cells = [cell for task in tasks for cell in _cells(
            results[row].get(task), None if intervals is None else intervals[row].get(task))]
        lines.append("| " + " | ".join([row] + cells) + " |")
    return "\n".join(lines) + "\n"


def variation_markdown(results: dict, title: str = "") -> str:
    """Variations against their sources: `results[row][strength]` = a set's report (`melody_sets.report`)
    with its 'source_similarity' (`melody_sets.source_similarity`) and optional 'source_latent_rms'; strength
    None for a reference row. Columns: the distances to the source, then the row's pooled C and Var, each
    OA score with its interval."""
    header = ["setting", "strength", "latent RMS to source", "pitch sim. to source", "dur. sim. to source",
              "pitch C", "pitch Var", "dur. C", "dur. Var"]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in _ordered_rows(results):
        for strength, report in sorted(results[row].items(), key=lambda item: (item[0] is not None, item[0])):
            similarity = [_cell(report["source_similarity"][feature]["mean"],
                                report["source_similarity"][feature]["interval"]) for feature in ("pitch", "duration")]
            distance = f"{report['source_latent_rms']:.3f}" if "source_latent_rms" in report else "-"
            cells = [row, "-" if strength is None else f"{strength:g}", distance, *similarity,
                     *_cells(report["table"], report["interval_pooled"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paper_results() -> dict:
    """PAPER_TABLE_1 in the `results` layout, so `to_markdown` renders it the same way."""
    return {
        row: {task: {"pitch": values[:2], "duration": values[2:]} for task, values in tasks.items()}
        for row, tasks in PAPER_TABLE_1.items()
    }


def write(results: dict, markdown_path: str, json_path: str, title: str = "") -> str:
    """Writes the table as markdown and JSON (local paths or URLs); returns the markdown."""
    markdown = to_markdown(results, title)
    run_path(markdown_path).write_text(markdown)
    run_path(json_path).write_text(json.dumps(results, indent=1))
    return markdown
