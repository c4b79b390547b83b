"""Shared by every benchmark script: describe the machine and append a section to RESULTS.md.

Usage inside a benchmark:
    from benchmarks import report
    report.append_section("Melody data pipeline", command, ["| files/s | ... |", ...])
"""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sys

RESULTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "tensorflow-cpu", "tensorflow-datasets", "note-seq",
                      "music21")


def machine_description() -> str:
    """One line: CPU model and count, memory, accelerator (jax's view), Python and package versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    import jax  # imported late: a benchmark may set XLA flags first

    devices = jax.devices()
    accelerator = f"{len(devices)} x {devices[0].device_kind}" if devices else "none"
    versions = []
    for name in VERSIONED_PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return (f"{cpu}, {os.cpu_count()} cores{memory}; jax devices: {accelerator}; "
            f"Python {sys.version.split()[0]}; " + ", ".join(versions))


def append_section(title: str, command: str, lines: list[str], notes: str = "") -> str:
    """Appends `## title` with date, machine, command and the given markdown lines; returns the text."""
    today = datetime.date.today().isoformat()
    text = "\n".join([
        f"\n## {title} ({today})", "",
        f"- machine: {machine_description()}",
        f"- command: `{command}`", "", *lines, "",
    ] + ([notes, ""] if notes else []))
    with open(RESULTS_PATH, "a") as f:
        f.write(text)
    print(text)
    return text


def publish(title: str, command: str, lines: list[str], notes: str = "", append: bool = True) -> None:
    """Appends the section to RESULTS.md, or with append=False (a script's --no_append) only prints it."""
    if append:
        append_section(title, command, lines, notes)
    else:
        print("\n".join(lines + ["", notes]))
