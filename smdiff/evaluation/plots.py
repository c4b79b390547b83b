"""Figures of the evaluation: infilling piano rolls (paper Fig. 2), metrics along the reverse process
(Fig. 3) and OA distributions. All take plain arrays and write PNG files (a local path or a URL such as
gs://bucket/eval/x.png: the bytes go through etils.epath).

Notes are int arrays [n, 3] of (start_step, end_step, pitch) on a 16th-note grid.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from smdiff.training.paths import run_path  # noqa: E402

STEPS_PER_BAR = 16
VOICE_COLORS = ("black", "tab:blue", "tab:green", "tab:red")  # a given top voice in black, the others coloured


def _save(fig, path: str) -> None:
    """Writes `fig` as a PNG to `path` and closes it."""
    with run_path(path).open("wb") as file:
        fig.savefig(file, format="png", dpi=110)
    plt.close(fig)


def _draw_roll(ax, layers: dict[str, np.ndarray], num_steps: int, known_span: tuple[int, int] | None, title: str
               ) -> np.ndarray:
    """Draws `layers` (label -> notes [n, 3]): one unlabelled layer in blue, labelled ones in VOICE_COLORS order
    with a legend. Returns the pitches drawn [n]."""
    colors = ("tab:blue",) if list(layers) == [""] else VOICE_COLORS
    if len(layers) > len(colors):
        raise ValueError(f"{len(layers)} layers, colours for {len(colors)}")
    all_notes = []
    for notes, color in zip(layers.values(), colors):
        notes = np.asarray(notes).reshape(-1, 3)
        all_notes.append(notes)
        for start, end, pitch in notes:
            ax.broken_barh([(start, max(end - start, 1))], (pitch - 0.4, 0.8), facecolors=color)
    if known_span is not None:  # shade the generated gap
        ax.axvspan(*known_span, color="tab:orange", alpha=0.15, lw=0)
    if colors is VOICE_COLORS:
        ax.legend(handles=[Patch(color=color, label=label) for label, color in zip(layers, colors)],
                  fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_xlim(0, num_steps)
    bar_ticks = STEPS_PER_BAR * (1 if num_steps <= 8 * STEPS_PER_BAR else 4)  # every bar on short rolls
    ticks = np.arange(0, num_steps + 1, bar_ticks)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t // STEPS_PER_BAR) for t in ticks])
    ax.set_ylabel("pitch")
    ax.set_title(title, fontsize=9, loc="left")
    return np.concatenate(all_notes)[:, 2]


def _set_pitch_range(ax, pitches: np.ndarray) -> None:
    pitches = pitches if len(pitches) else np.array([60])
    ax.set_ylim(pitches.min() - 3, pitches.max() + 3)


def piano_rolls(rolls: dict[str, np.ndarray | dict[str, np.ndarray]], num_steps: int, path: str,
                gap_steps: tuple[int, int] | None = None, title: str = "", same_pitch_range: bool = False) -> None:
    """One piano roll per entry, stacked: label -> notes [n, 3] (drawn in blue), or label -> {voice label: notes}
    (each voice in its colour of VOICE_COLORS, in order, with a legend); `gap_steps` shades the infilled span;
    `same_pitch_range`: one pitch axis for all (else each roll's own)."""
    fig, axes = plt.subplots(len(rolls), 1, figsize=(10, 1.6 * len(rolls)), sharex=True, squeeze=False)
    pitches = [_draw_roll(ax, notes if isinstance(notes, dict) else {"": notes}, num_steps, gap_steps, label)
               for ax, (label, notes) in zip(axes[:, 0], rolls.items())]
    for ax, drawn in zip(axes[:, 0], pitches):
        _set_pitch_range(ax, np.concatenate(pitches) if same_pitch_range else drawn)
    axes[-1, 0].set_xlabel("bar")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def metrics_along_reverse_process(steps: np.ndarray, curves: dict[str, np.ndarray], path: str,
                                  title: str = "") -> None:
    """Paper Fig. 3: each metric (label -> values per step) against the reverse-process step, 3 per row."""
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    for ax, (label, values) in zip(axes.flat, curves.items()):
        ax.plot(steps, values)
        ax.set_xlabel("reverse step")
        ax.set_title(label, fontsize=9)
        ax.invert_xaxis()  # the reverse process runs from N down to 1
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def overlap_distributions(oas: dict[str, np.ndarray], path: str, feature: str) -> None:
    """Histograms of adjacent-frame OA values, one line per setting (label -> OA values)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.linspace(0, 1, 41)
    for label, values in oas.items():
        ax.hist(np.asarray(values), bins=bins, histtype="step", density=True, label=label)
    ax.set_xlabel(f"{feature} overlapping area of adjacent frames")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
