"""Evaluate a trained binomial-diffusion model on held-out chorale segments, against the baselines.

    smdiff pianoroll-eval --workdir=workdirs/binomial_cpu --data_dir=data/tfds \
        --output_dir=outputs/binomial_cpu_eval [--num_segments=64 --sampler=posterior --num_sampling_steps=100]
        [--conditioning=model (a conditioned U-Net) --num_resamplings=1]

Tasks (each on the same test segments): unconditional sampling, harmonization of the soprano, infilling
of the middle half, continuation of the first half, and variation. Systems: the model, independent
Bernoulli noise at the data's density in the generated cells, the real test segments (a calibration row),
and for harmonization the given melody alone, the diatonic-triad rule baseline and another chorale's lower
voices transposed to the segment's key (`pianoroll_baselines`), with the harmony metrics
(`scoring.score_harmony`: `harmony_*` keys). Writes `metrics.json`, `metrics.md`, `bootstrap.json` (90%
intervals of the OA and harmony scores over resampled segments, and how often each system beats Bernoulli on
the same resamples), every task's rolls (`rolls/<task>.npz`, one bool array [n, T, P] per system), MIDI files of
the first rolls and one piano-roll figure per task.
"""
from __future__ import annotations

import json
import os
import time
from typing import Sequence

import jax
import numpy as np
from absl import app, flags, logging

from smdiff import configurables, jobflags, joblog
from smdiff.data import tfds_io
from smdiff.data.keys import MODES, Key
from smdiff.data.pianoroll import PitchRange, roll_to_midi_file, roll_to_notes
from smdiff.evaluation import pianoroll_metrics as metrics
from smdiff.evaluation import plots, scoring
from smdiff.generators import pianoroll_baselines
from smdiff.generators.pianoroll import PianorollGenerator, melody_mask
from smdiff.training.loop_helpers import enable_compilation_cache

VARIATION_STRENGTH = 0.5


def load_segments(name: str, data_dir: str | None, split: str, original_key_only: bool = False,
                  limit: int | None = None) -> dict[str, np.ndarray]:
    """A split of `pianorolls` as numpy arrays: roll [n, T, P], tracks [n, V, T, P], key_tonic/key_mode/piece [n]."""
    return tfds_io.load_split(name, split, data_dir, ("roll", "tracks", "key_tonic", "key_mode", "piece"), limit=limit,
                              where=(lambda example: example["transpose"] == 0) if original_key_only else None)


def evaluate(generator: PianorollGenerator, test: dict[str, np.ndarray], train_rolls: np.ndarray, density: float,
             pitch_range: PitchRange, steps_per_quarter: int, seed: int = 0, output_dir: str | None = None,
             num_midi: int = 8, num_resamples: int = 1000) -> tuple[dict, dict]:
    """Scores and their uncertainty on the test segments; rolls, MIDI and figures under output_dir.

    Returns ({task: {system: {metric: value}}}, {task: `metrics.bootstrap_summary`}): the second holds the
    OA scores' intervals over `num_resamples` bootstrap resamples of the segments.
    """
    steps_per_bar = 4 * steps_per_quarter
    lowest = pitch_range.lowest_pitch
    rolls = test["roll"].astype(np.float32)  # [n, T, P]
    n, num_steps, _ = rolls.shape
    keys = [Key(int(tonic), MODES[int(mode)]) for tonic, mode in zip(test["key_tonic"], test["key_mode"])]
    train_overlaps = metrics.roll_overlaps(train_rolls, lowest, steps_per_bar)
    noise = np.random.default_rng(seed)
    rng = jax.random.PRNGKey(seed)
    nothing_given = np.zeros(rolls.shape, bool)

    def with_noise(known: np.ndarray, given: np.ndarray) -> np.ndarray:
        return np.where(given, known, metrics.bernoulli_rolls(noise, known.shape, density))

    soprano = test["tracks"][:, 0].astype(np.float32)
    # Harmonizations with exact voices (harmony metrics): Bach's and the training-free rule / transposed-Bach rows.
    voiced = {"test_data": test["tracks"], **pianoroll_baselines.harmonization_baselines(
        test["tracks"], keys, test["piece"], steps_per_quarter, lowest)}
    harmony_given = melody_mask(soprano)
    middle = (np.arange(num_steps) < num_steps // 4) | (np.arange(num_steps) >= 3 * num_steps // 4)
    prefix = np.arange(num_steps) < num_steps // 2
    infill_given = np.broadcast_to(middle[None, :, None], rolls.shape)
    prefix_given = np.broadcast_to(prefix[None, :, None], rolls.shape)

    rngs = jax.random.split(rng, 5)
    # task: (given cells, keys, the model's rolls, the baselines' rolls); the callables run in the loop, so
    # each task's sampling is logged as it finishes.
    tasks = {
        "unconditional": (nothing_given, None, lambda: generator.sample(rngs[0], n), lambda: {
            "bernoulli": metrics.bernoulli_rolls(noise, rolls.shape, density)}),
        "harmonization": (harmony_given, keys, lambda: generator.harmonize(rngs[1], soprano), lambda: {
            "bernoulli": with_noise(soprano, harmony_given), "melody_only": soprano,
            **{system: tracks.max(axis=1).astype(np.float32) for system, tracks in voiced.items() if system != "test_data"}}),
        "infilling": (infill_given, keys, lambda: generator.infill(rngs[2], rolls, middle), lambda: {
            "bernoulli": with_noise(rolls, infill_given)}),
        "continuation": (prefix_given, keys, lambda: generator.infill(rngs[3], rolls, prefix), lambda: {
            "bernoulli": with_noise(rolls, prefix_given)}),
        "variation": (nothing_given, keys, lambda: generator.vary(rngs[4], rolls, VARIATION_STRENGTH), dict),
    }
    test_overlaps = metrics.roll_overlaps(rolls, lowest, steps_per_bar)  # the calibration row of every task
    results, uncertainty = {}, {}
    for task, (given, task_keys, sample_model, baselines) in tasks.items():
        start = time.perf_counter()
        generated = {"model": np.asarray(sample_model()), **baselines()}
        logging.info("%s: sampled %d segments in %.0f s", task, n, time.perf_counter() - start)
        overlaps = {system: metrics.roll_overlaps(system_rolls, lowest, steps_per_bar)
                    for system, system_rolls in generated.items()} | {"test_data": test_overlaps}
        outputs = {**generated, "test_data": rolls}
        results[task] = scoring.score_rolls(outputs, overlaps, rolls, given, task_keys, train_overlaps, lowest)
        uncertainty[task] = metrics.bootstrap_summary(
            metrics.oa_bootstrap(overlaps, train_overlaps, num_resamples, seed))
        if task == "harmonization":
            values, intervals = scoring.score_harmony(outputs, voiced, soprano, steps_per_quarter, lowest,
                                                      num_resamples, seed)
            for system in values:
                results[task][system].update(values[system])
                uncertainty[task][system].update(intervals[system])
        if task == "variation":  # how much of the source piece a variation keeps
            results[task]["model"].update({f"kept_{k}": v for k, v in metrics.note_precision_recall_f1(
                outputs["model"], rolls, lowest).items()})
        if output_dir:
            _export(output_dir, task, outputs, given, pitch_range, steps_per_quarter, num_midi)
    return results, uncertainty


def _export(output_dir: str, task: str, outputs: dict[str, np.ndarray], given: np.ndarray, pitch_range: PitchRange,
            steps_per_quarter: int, num_midi: int) -> None:
    """Every system's rolls, MIDI files of the first `num_midi` of them, and one figure comparing them."""
    os.makedirs(os.path.join(output_dir, "rolls"), exist_ok=True)
    np.savez_compressed(os.path.join(output_dir, "rolls", f"{task}.npz"),
                        **{system: rolls.astype(bool) for system, rolls in outputs.items()})
    midi_dir = os.path.join(output_dir, "midi", task)
    os.makedirs(midi_dir, exist_ok=True)
    for system, rolls in outputs.items():
        for i, roll in enumerate(rolls[:num_midi]):
            roll_to_midi_file(roll, pitch_range, steps_per_quarter, os.path.join(midi_dir, f"{system}_{i:03d}.mid"))
    os.makedirs(os.path.join(output_dir, "figures"), exist_ok=True)
    generated_steps = np.nonzero(~given[0].all(axis=-1))[0]
    gap = (int(generated_steps[0]), int(generated_steps[-1]) + 1) if given[0].any() and len(generated_steps) else None
    plots.piano_rolls({system: roll_to_notes(rolls[0], pitch_range.lowest_pitch) for system, rolls in outputs.items()},
                      num_steps=given.shape[1], path=os.path.join(output_dir, "figures", f"{task}.png"),
                      gap_steps=gap, title=f"{task} (first test segment)")


LOWER_IS_BETTER = scoring.LOWER_IS_BETTER
CALIBRATION_SYSTEM = "test_data"
NOT_SCORES = ("density",)


def losses_to_baseline(results: dict, system: str = "model", baseline: str = "bernoulli",
                       uncertainty: dict | None = None) -> list[str]:
    """'task: metric (value vs baseline)' for every score where `system` does not beat `baseline` (empty: it
    wins everywhere). With `evaluate`'s uncertainty, an OA score also says in what fraction of the paired
    resamples `system` and the real test data beat the baseline."""
    losses = []
    for task, systems in results.items():
        if system not in systems or baseline not in systems:
            continue
        for metric, value in systems[system].items():
            if metric in NOT_SCORES or metric not in systems[baseline]:
                continue
            other = systems[baseline][metric]
            better = value < other if metric in LOWER_IS_BETTER else value > other
            if not better:
                losses.append(f"{task}: {metric} ({value:.3f} vs {other:.3f}"
                              f"{_resampled_wins(uncertainty, task, metric, system, baseline)})")
    return losses


def _resampled_wins(uncertainty: dict | None, task: str, metric: str, system: str, baseline: str) -> str:
    """'; ahead of <baseline> in x% of resamples (test data: y%)' for an OA score, else ''."""
    if not uncertainty or metric not in uncertainty[task].get(system, {}):
        return ""
    wins = uncertainty[task][system][metric][f"beats_{baseline}"]
    text = f"; ahead of {baseline} in {wins:.0%} of resamples"
    if metric in uncertainty[task].get(CALIBRATION_SYSTEM, {}):
        text += f", the real test data in {uncertainty[task][CALIBRATION_SYSTEM][metric][f'beats_{baseline}']:.0%}"
    return text


def to_markdown(results: dict, uncertainty: dict | None = None) -> str:
    """One table per task: systems as rows, metrics as columns; OA scores with their 90% interval."""
    lines = []
    for task, systems in results.items():
        columns = sorted({name for scores in systems.values() for name in scores})
        lines += [f"### {task}", "", "| system | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for system, scores in systems.items():
            intervals = uncertainty[task].get(system, {}) if uncertainty else {}
            cells = [("-" if c not in scores else f"{scores[c]:.3f}" if c not in intervals
                      else f"{scores[c]:.3f} ({intervals[c]['low']:.2f}-{intervals[c]['high']:.2f})") for c in columns]
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


FLAGS = jobflags.namespace()
flags.DEFINE_string("workdir", None, "the training workdir of a BinomialTask run", flag_values=FLAGS)
flags.DEFINE_string("dataset", "pianorolls/bach_chorales", "the pianorolls dataset the model was trained on",
                    flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "TFDS data_dir of the dataset", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "metrics, rolls, MIDI and figures (default: <workdir>/pianoroll_eval)",
                    flag_values=FLAGS)
flags.DEFINE_integer("checkpoint_step", None, "the checkpoint to evaluate (default: the latest)", flag_values=FLAGS)
flags.DEFINE_integer("num_segments", 64, "test segments per task", flag_values=FLAGS)
flags.DEFINE_string("sampler", "posterior", "reverse-process sampler: posterior | paper", flag_values=FLAGS)
flags.DEFINE_integer("num_sampling_steps", None, "reverse steps (default: all T)", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "sampling seed", flag_values=FLAGS)
flags.DEFINE_string("conditioning", "clamp", "clamp (the paper's) | model (a conditioned U-Net also reads the "
                    "known cells)", flag_values=FLAGS)
flags.DEFINE_integer("num_resamplings", 1, "RePaint-style resamplings of every conditioned reverse step",
                     flag_values=FLAGS)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir (a BinomialTask training workdir) is required")
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "pianoroll_eval")
    joblog.setup(output_dir, "pianoroll_eval")
    enable_compilation_cache()
    task, params = configurables.load_trained(FLAGS.workdir, ema=True, step=FLAGS.checkpoint_step)
    statistics = tfds_io.load_metadata(tfds_io.dataset_dir(FLAGS.dataset, FLAGS.data_dir))
    pitch_range = PitchRange(statistics["lowest_pitch"], statistics["num_pitches"])
    test = load_segments(FLAGS.dataset, FLAGS.data_dir, "test", limit=FLAGS.num_segments)
    train_rolls = load_segments(FLAGS.dataset, FLAGS.data_dir, "train", original_key_only=True)["roll"]
    generator = PianorollGenerator(task, params, test["roll"].shape[1:], FLAGS.sampler, FLAGS.num_sampling_steps,
                                   conditioning=FLAGS.conditioning, num_resamplings=FLAGS.num_resamplings)
    results, uncertainty = evaluate(generator, test, train_rolls, statistics["density"], pitch_range,
                                    statistics["steps_per_quarter"], FLAGS.seed, output_dir)
    for name, value in (("metrics.json", results), ("bootstrap.json", uncertainty)):
        with open(os.path.join(output_dir, name), "w") as f:
            json.dump(value, f, indent=2)
    losses = losses_to_baseline(results, uncertainty=uncertainty)
    table = to_markdown(results, uncertainty) + "\n" + (
        "The model beats the Bernoulli baseline on every score." if not losses
        else "Scores where the model does not beat the Bernoulli baseline:\n" + "\n".join(f"- {x}" for x in losses))
    with open(os.path.join(output_dir, "metrics.md"), "w") as f:
        f.write(table)
    print(table)
