"""`make demo`: the whole pipeline on the corpus that ships with music21, end to end, resumable.

    make demo                              # full run (see README for the measured stage times)
    SMDIFF_DEMO_QUICK=1 make demo          # a first look: a corpus slice, short trainings, 100 samples
    SMDIFF_DEMO_DIR=/tmp/demo make demo    # put everything somewhere else (default: demo_output/)

Stages, in the order data flows (each one is a command printed before it runs, so any stage can be
re-run by hand): melody datasets -> their statistics -> melody VAE -> its validation report -> latent
dataset -> diffusion prior and TransformerMDN -> samples of every generator and task -> Table 1 and figures.
A finished stage leaves a marker in `<dir>/stages/` and is skipped when the demo runs again; an
interrupted stage resumes (training from its last checkpoint, sampling from its last finished chunk).
The last stage scores the diffusion prior's x0 estimates along its reverse process (paper Fig. 3).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time

from smdiff.generators.registry import GENERATORS
from smdiff.training.paths import run_path

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Settings:
    """What differs between the full demo and the quick look."""

    max_examples: int | None  # TFDS's --max_examples_per_split: a corpus slice (None = all ~11,700 tunes)
    vae_steps: int | None  # None = the experiment's own step count
    prior_steps: int | None
    mdn_steps: int | None
    num_samples: int
    diffusion_sampler: tuple[str, ...]  # extra `smdiff sample` flags for the diffusion generator
    reverse_every: int  # Fig. 3 records the x0 estimate every this many of the diffusion sampler's steps


FULL = Settings(max_examples=None, vae_steps=None, prior_steps=None, mdn_steps=None, num_samples=1000,
                diffusion_sampler=(), reverse_every=50)
QUICK = Settings(max_examples=1500, vae_steps=300, prior_steps=300, mdn_steps=300, num_samples=100,
                 # eta=1: on the quick demo's weak prior, DDIM eta=0 over-disperses (benchmarks/RESULTS.md,
                 # "the samplers' spread"); eta=1 at 50 steps is within the 1000-step DDPM's intervals.
                 diffusion_sampler=("--sampler=ddim", "--num_sampling_steps=50", "--eta=1"), reverse_every=5)


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _train(experiment: str, workdir: str, data_dir: str, steps: int | None) -> list[str]:
    bindings = [f"DATA_DIR='{data_dir}'"]
    if steps is not None:
        bindings += [f"train.num_train_steps={steps}", f"train.checkpoint_every_steps={max(steps // 3, 1)}",
                     f"train.eval_every_steps={steps}"]
    return _python("-m", "smdiff.cli", "train", f"--gin_file={experiment}", f"--workdir={workdir}",
                   *[f"--gin_bindings={binding}" for binding in bindings])


def stages(out: str, settings: Settings) -> list[tuple[str, list[str]]]:
    """(name, command) of every stage for output folder `out`."""
    data_dir, workdirs = os.path.join(out, "tfds"), os.path.join(out, "workdirs")
    # A learned generator's prior is trained in workdirs/<generator name>.
    vae, ddpm, mdn = (os.path.join(workdirs, name) for name in ("melody_vae", "diffusion", "mdn"))
    build = [f"--data_dir={data_dir}", "--config=embedded"]
    if settings.max_examples:
        build.append(f"--max_examples_per_split={settings.max_examples}")
    result = [
        ("melody chunks", _python("-m", "smdiff.cli", "build", "tfds_builders/melody_chunks", *build)),
        ("melody windows", _python("-m", "smdiff.cli", "build", "tfds_builders/melody_windows", *build)),
        ("melody statistics", _python("-m", "smdiff.cli", "stats", "--dataset=melody_windows/embedded",
                                      f"--data_dir={data_dir}")),
        ("melody VAE", _train("gin/experiments/melody_vae_embedded_cpu.gin", vae, data_dir, settings.vae_steps)),
        ("VAE report", _python("-m", "smdiff.cli", "vae-report", f"--workdir={vae}", f"--data_dir={data_dir}")),
        ("latent dataset", _python("-m", "smdiff.cli", "build", f"melody_latents/embedded/vae_workdir={vae}",
                                   "--imports=tfds_builders", f"--data_dir={data_dir}")),
        ("diffusion prior", _train("gin/experiments/latent_diffusion_embedded_cpu.gin", ddpm, data_dir,
                                   settings.prior_steps)),
        ("TransformerMDN", _train("gin/experiments/mdn_embedded_cpu.gin", mdn, data_dir, settings.mdn_steps)),
    ]
    samples = os.path.join(out, "samples")
    for generator, registration in GENERATORS.items():
        command = _python("-m", "smdiff.cli", "sample", f"--generator={generator}",
                          *[f"--mode={mode}" for mode in registration.modes], f"--vae_workdir={vae}",
                          f"--data_dir={data_dir}", f"--num_samples={settings.num_samples}",
                          f"--output_dir={os.path.join(samples, generator)}")
        if registration.needs_prior:
            command.append(f"--prior_workdir={os.path.join(workdirs, generator)}")
        if generator == "diffusion":
            command += settings.diffusion_sampler
        result.append((f"samples: {generator}", command))
    evaluation = os.path.join(out, "evaluation")
    result.append(("evaluation", _python("-m", "smdiff.cli", "evaluate", f"--samples_dir={samples}",
                                         f"--data_dir={data_dir}", f"--output_dir={evaluation}")))
    result.append(("reverse process", _python("-m", "smdiff.cli", "reverse-process", f"--prior_workdir={ddpm}",
                                              f"--vae_workdir={vae}", f"--data_dir={data_dir}",
                                              f"--output_dir={evaluation}", f"--num_samples={settings.num_samples}",
                                              f"--every={settings.reverse_every}", *settings.diffusion_sampler)))
    return result


def run(out: str, settings: Settings) -> dict[str, float]:
    """Runs every stage not yet finished; returns seconds per stage (of this run or the earlier one)."""
    markers = run_path(out) / "stages"
    markers.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for name, command in stages(out, settings):
        marker = markers / (name.replace(" ", "_").replace(":", "") + ".json")
        if marker.exists():
            seconds[name] = json.loads(marker.read_text())["seconds"]
            print(f"== {name}: done earlier ({seconds[name]:.0f} s), skipped", flush=True)
            continue
        print(f"== {name}\n$ {shlex.join(command)}", flush=True)
        start = time.time()
        completed = subprocess.run(command, cwd=REPO_ROOT)
        if completed.returncode != 0:
            sys.exit(f"demo stage {name!r} failed (exit {completed.returncode}); fix it and re-run: "
                     "finished stages are kept")
        seconds[name] = time.time() - start
        marker.write_text(json.dumps({"seconds": seconds[name], "command": command}))
    return seconds


def main() -> None:
    quick = os.environ.get("SMDIFF_DEMO_QUICK", "") not in ("", "0")
    out = str(run_path(os.environ.get("SMDIFF_DEMO_DIR") or os.path.join(
        REPO_ROOT, "demo_output_quick" if quick else "demo_output")))
    settings = QUICK if quick else FULL
    start = time.time()
    seconds = run(out, settings)
    (run_path(out) / "stage_seconds.json").write_text(json.dumps(seconds, indent=1))
    print("\n" + "\n".join(f"{name:32s} {value:8.0f} s" for name, value in seconds.items()))
    print(f"\nThis run: {time.time() - start:.0f} s. Everything is in {out}:")
    print(f"  {os.path.join(out, 'evaluation', 'table1.md')}  (Table 1), figures in evaluation/figures/, "
          f"MIDI in samples/<generator>/<mode>-*/midi/")


if __name__ == "__main__":
    main()
