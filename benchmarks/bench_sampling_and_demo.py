"""Sampling throughput per generator and task, and the wall time of each demo stage, from finished runs.

    python -m benchmarks.bench_sampling_and_demo --samples_dir=outputs/embedded/samples \\
        --demo_dir=demo_output_quick

Reads what `smdiff sample` recorded in each chunk's DONE.json (samples/s of generation + decoding, timed
inside the job) and what `make demo` recorded in stage_seconds.json, and appends a section to RESULTS.md.
"""
import glob
import json
import os
import sys

from absl import app, flags

from benchmarks import report

flags.DEFINE_string("samples_dir", None, "one sub-folder of chunks per generator")
flags.DEFINE_string("demo_dir", None, "a demo output folder with stage_seconds.json")


def sampling_rows(samples_dir: str) -> list[str]:
    rows = ["| generator | task | samples | settings | samples/s (median chunk) |", "|---|---|---|---|---|"]
    for generator_dir in sorted(glob.glob(os.path.join(samples_dir, "*"))):
        markers = [json.load(open(p)) for p in glob.glob(os.path.join(generator_dir, "*", "DONE.json"))]
        for task in sorted({m["task"] for m in markers}):
            chunks = [m for m in markers if m["task"] == task]
            rates = sorted(m["samples_per_second"] for m in chunks)
            first = chunks[0]
            settings = (f"{first['sampler']}, {first['num_steps'] or 'all'} steps" if first["generator"] == "diffusion"
                        else f"T={first['temperature']}" if first["generator"] == "mdn" else "-")
            rows.append(f"| {first['generator']} | {task} | {sum(m['size'] for m in chunks)} | {settings} | "
                        f"{rates[len(rates) // 2]:.1f} |")
    return rows


def demo_rows(demo_dir: str) -> list[str]:
    seconds = json.load(open(os.path.join(demo_dir, "stage_seconds.json")))
    rows = ["| demo stage | wall time (s) |", "|---|---|"]
    rows += [f"| {name} | {value:.0f} |" for name, value in seconds.items()]
    rows.append(f"| total | {sum(seconds.values()):.0f} |")
    return rows


def main(argv):
    del argv
    lines = []
    if flags.FLAGS.samples_dir:
        lines += sampling_rows(flags.FLAGS.samples_dir) + [""]
    if flags.FLAGS.demo_dir:
        lines += demo_rows(flags.FLAGS.demo_dir)
    load = os.getloadavg()[0]
    report.append_section("Sampling throughput and demo stage times", "python -m benchmarks.bench_sampling_and_demo "
                          + " ".join(sys.argv[1:]), lines,
                          f"Samples/s include VAE decoding and are timed inside `smdiff sample` on the CPU; 1-minute "
                          f"load average now {load:.1f} on 2 cores (the runs shared the cores with other jobs).")


if __name__ == "__main__":
    app.run(main)
