"""Evaluate a trained binomial-diffusion model on held-out chorale segments, against the baselines.

    smdiff pianoroll-eval --workdir=workdirs/binomial_cpu --data_dir=data/tfds \
        --output_dir=outputs/binomial_cpu_eval [--num_segments=64 --sampler=posterior --num_sampling_steps=100]
        [--conditioning=model (a conditioned U-Net) --num_resamplings=1]

Tasks (each on the same test segments): unconditional sampling, harmonization of the soprano, infilling
of the middle half, continuation of the first half, and variation. A model of voice-channel rolls
(--dataset=pianorolls/bach_chorales_voices: [T, P, 4], S, A, T, B) makes them over all voices (harmonization: the
soprano channel given, the others generated) and is scored on its channels merged, the same tables as a merged
model's; its harmonizations' harmony metrics read the channels as the voices (exact, `model`) and, for comparison
with a merged model, the merged roll by pitch order (`model_merged`). Systems: the model, independent
Bernoulli noise at the data's density in the generated cells, the real test segments (a calibration row),
and for harmonization the given melody alone, the diatonic-triad rule baseline and another chorale's lower
voices transposed to the segment's key (`pianoroll_baselines`), with the harmony metrics
(`scoring.score_harmony`: `harmony_*` keys). Writes `metrics.json`, `metrics.md`, `bootstrap.json` (90%
intervals of the OA and harmony scores over resampled segments, and how often each system beats Bernoulli on
the same resamples), every task's rolls (`rolls/<task>.npz`, one bool array [n, T, P] per system), MIDI files of
the first rolls and one piano-roll figure per task.

The model's rolls are made in chunks of --chunk_size segments per task (`generated/<task>-00001-of-00004/`,
smdiff/sampling/shards.py), so a killed run resumes where it stopped and several processes share the work:
under launch/ the job joins jax.distributed like training (`topology.json` records the processes and
devices), each process makes its own chunks on all of its local devices, and process 0 scores them all
once every process is done. The rolls are the same for any number of processes and devices.

    launch/local.sh --processes=2 pianoroll-eval -- --workdir=workdirs/binomial_cpu --data_dir=data/tfds
"""
from __future__ import annotations

import json
import time
from typing import Sequence

import jax
import numpy as np
from absl import app, flags, logging

from smdiff import configurables, jobflags, joblog
from smdiff.data import tfds_io
from smdiff.data.keys import MODES, Key
from smdiff.data.melody import note_sequence_to_midi_file
from smdiff.data.pianoroll import PitchRange, channels_to_tracks, roll_to_note_sequence, roll_to_notes
from smdiff.evaluation import pianoroll_metrics as metrics
from smdiff.evaluation import plots, scoring
from smdiff.generators import pianoroll_baselines
from smdiff.generators.pianoroll import PianorollGenerator, melody_mask, soprano_channel_condition
from smdiff.sampling import shards
from smdiff.training import sharding, topology
from smdiff.training.loop_helpers import enable_compilation_cache
from smdiff.training.paths import is_url, run_path
from smdiff.training.workdir import latest_step

VARIATION_STRENGTH = 0.5
TASKS = ("unconditional", "harmonization", "infilling", "continuation", "variation")
GENERATED = "generated"  # the model's rolls, in chunks, under the output folder


def load_segments(name: str, data_dir: str | None, split: str, original_key_only: bool = False,
                  limit: int | None = None) -> dict[str, np.ndarray]:
    """A split of `pianorolls` as numpy arrays: roll [n, T, P] (voice channels: [n, T, P, V]), tracks [n, V, T, P],
    key_tonic/key_mode/piece [n]."""
    return tfds_io.load_split(name, split, data_dir, ("roll", "tracks", "key_tonic", "key_mode", "piece"), limit=limit,
                              where=(lambda example: example["transpose"] == 0) if original_key_only else None)


def task_conditions(test: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{task: (the rolls the model starts from [n, T, P(, V)], the cells given to it, bool of their shape)}: the
    test segments for every task (nothing given for unconditional and variation), their soprano for harmonization:
    its top-voice cells (`melody_mask`), or for voice-channel rolls [n, T, P, V] its whole channel."""
    rolls = test["roll"].astype(np.float32)  # [n, T, P(, V)]
    num_steps = rolls.shape[1]
    per_step = (1, num_steps) + (1,) * (rolls.ndim - 2)
    middle = (np.arange(num_steps) < num_steps // 4) | (np.arange(num_steps) >= 3 * num_steps // 4)
    prefix = np.arange(num_steps) < num_steps // 2
    nothing_given = np.zeros(rolls.shape, bool)
    soprano = test["tracks"][:, 0].astype(np.float32)  # [n, T, P]
    if rolls.ndim == 4:
        harmonization = soprano_channel_condition(soprano, rolls.shape[-1])
    else:
        harmonization = (soprano, melody_mask(soprano))
    return {
        "unconditional": (rolls, nothing_given),
        "harmonization": harmonization,
        "infilling": (rolls, np.broadcast_to(middle.reshape(per_step), rolls.shape)),
        "continuation": (rolls, np.broadcast_to(prefix.reshape(per_step), rolls.shape)),
        "variation": (rolls, nothing_given),
    }


def _model_rolls(generator: PianorollGenerator, task: str, rng: jax.Array, known: np.ndarray,
                 given: np.ndarray) -> np.ndarray:
    """The model's rolls [n, T, P(, V)] bool for `task`, from the segments' `known` rolls and `given` cells."""
    if task == "unconditional":
        rolls = generator.sample(rng, len(known))
    elif task == "variation":
        rolls = generator.vary(rng, known, VARIATION_STRENGTH)
    else:
        rolls = generator.complete(rng, known, given)
    return np.asarray(rolls).astype(bool)


def _work_items(num_segments: int, chunk_size: int) -> list[tuple[str, shards.Chunk]]:
    """Every (task, chunk) of a run, in the order shards take turns over them."""
    return [(task, chunk) for task in TASKS for chunk in shards.plan_chunks(num_segments, chunk_size)]


def chunk_rolls(generator: PianorollGenerator, task: str, conditions: dict[str, tuple[np.ndarray, np.ndarray]],
                chunk: shards.Chunk, seed: int) -> np.ndarray:
    """The model's rolls bool [chunk.size, T, P(, V)] for one chunk of `task`'s segments (`conditions`:
    `task_conditions` of them all); its randomness comes from (seed, task, chunk index) alone."""
    rows = slice(chunk.start, chunk.start + chunk.size)
    known, given = conditions[task]
    rng = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), TASKS.index(task)), chunk.index)
    return _model_rolls(generator, task, rng, known[rows], given[rows])


def generate(generator: PianorollGenerator, test: dict[str, np.ndarray], generated_dir: str, chunk_size: int,
             seed: int = 0, metadata: dict | None = None, shard_id: int | None = None,
             num_shards: int | None = None) -> None:
    """Makes this shard's chunks of the model's rolls in `generated_dir` (`<task>-00001-of-00004/rolls.npz`:
    `model` bool [m, T, P(, V)] and `segment_index` [m]), skipping chunks a killed run already finished.

    The (task, chunk) pairs are dealt round robin over the shards (default: the jax process index and
    count). A chunk's randomness comes from (seed, task, chunk index) alone and the generator's output does
    not depend on the device count, so the rolls are the same for any number of processes and devices.
    """
    shard_id = jax.process_index() if shard_id is None else shard_id
    num_shards = jax.process_count() if num_shards is None else num_shards
    conditions = task_conditions(test)
    metadata = {**(metadata or {}), "num_segments": len(test["roll"]), "chunk_size": chunk_size, "seed": seed,
                "rows_per_step": sharding.rows_per_step()}
    items = _work_items(len(test["roll"]), chunk_size)
    mine = [(task, chunk) for index, (task, chunk) in enumerate(items) if index % num_shards == shard_id]
    shards.check_same_run(generated_dir, TASKS, metadata)
    todo = [(task, chunk) for task, chunk in mine if not shards.is_complete(generated_dir, task, chunk)]
    logging.info("shard %d/%d: %d of its %d chunks to make on %d local device(s)", shard_id, num_shards, len(todo),
                 len(mine), jax.local_device_count())
    made_by = shards.made_by()
    for task, chunk in todo:
        start = time.perf_counter()
        rolls = chunk_rolls(generator, task, conditions, chunk, seed)
        seconds = time.perf_counter() - start
        rows = slice(chunk.start, chunk.start + chunk.size)

        def write_files(folder, rolls=rolls, segment_index=np.arange(rows.start, rows.stop), seconds=seconds):
            shards.save_npz(folder / "rolls.npz", {"model": rolls, "segment_index": segment_index})
            return {"seconds": round(seconds, 3), **made_by}

        shards.write_chunk(generated_dir, task, chunk, write_files, {**metadata, "task": task})
        logging.info("%s: sampled segments %d-%d in %.1f s", task, rows.start, rows.stop - 1, seconds)


def load_generated(generated_dir: str, num_segments: int, chunk_size: int) -> dict[str, np.ndarray]:
    """{task: the model's rolls bool [n, T, P(, V)]} from the chunks of every process.

    Raises:
      FileNotFoundError: naming the chunks that are not complete (a process died: rerun to make them).
    """
    missing = [task_chunk[1].name(task_chunk[0]) for task_chunk in _work_items(num_segments, chunk_size)
               if not shards.is_complete(generated_dir, *task_chunk)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} generated chunks are not complete in {generated_dir} "
                                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); rerun the job to "
                                "make them")
    generated = {}
    for task in TASKS:
        parts = [shards.load_npz(folder / "rolls.npz") for folder in shards.completed_chunks(generated_dir, task)]
        generated[task] = np.concatenate([part["model"] for part in parts])
    return generated


def evaluate(generated: dict[str, np.ndarray], test: dict[str, np.ndarray], train_rolls: np.ndarray, density: float,
             pitch_range: PitchRange, steps_per_quarter: int, seed: int = 0, output_dir: str | None = None,
             num_midi: int = 8, num_resamples: int = 1000) -> tuple[dict, dict]:
    """Scores of the model's rolls (`generate`, `load_generated`) and the baselines on the test segments,
    with their uncertainty; rolls, MIDI and figures under output_dir.

    Voice-channel rolls (test roll [n, T, P, V], the model's, train_rolls) are scored with their channels merged,
    against the same baselines as a merged model (density: of the merged rolls); the model's harmonizations also
    with the channels as exact voices (`model`) and merged, by pitch order (`model_merged`).
    Returns ({task: {system: {metric: value}}}, {task: `metrics.bootstrap_summary`}): the second holds the
    OA scores' intervals over `num_resamples` bootstrap resamples of the segments.
    """
    steps_per_bar = 4 * steps_per_quarter
    lowest = pitch_range.lowest_pitch
    model_voices = {}
    if test["roll"].ndim == 4:
        model_voices = {"model": channels_to_tracks(generated["harmonization"])}  # [n, V, T, P]
        generated = {task: rolls.max(axis=-1) for task, rolls in generated.items()}
        test, train_rolls = {**test, "roll": test["roll"].max(axis=-1)}, train_rolls.max(axis=-1)
    rolls = test["roll"].astype(np.float32)  # [n, T, P]
    keys = [Key(int(tonic), MODES[int(mode)]) for tonic, mode in zip(test["key_tonic"], test["key_mode"])]
    train_overlaps = metrics.roll_overlaps(train_rolls, lowest, steps_per_bar)
    noise = np.random.default_rng(seed)
    conditions = task_conditions(test)

    def with_noise(known: np.ndarray, given: np.ndarray) -> np.ndarray:
        return np.where(given, known, metrics.bernoulli_rolls(noise, known.shape, density))

    soprano = conditions["harmonization"][0]
    # Harmonizations with exact voices (harmony metrics): Bach's and the training-free rule / transposed-Bach rows.
    voiced = {"test_data": test["tracks"], **model_voices, **pianoroll_baselines.harmonization_baselines(
        test["tracks"], keys, test["piece"], steps_per_quarter, lowest)}
    # task: the baselines' rolls, made in this order from one noise stream
    baselines = {
        "unconditional": lambda: {"bernoulli": metrics.bernoulli_rolls(noise, rolls.shape, density)},
        "harmonization": lambda: {"bernoulli": with_noise(*conditions["harmonization"]), "melody_only": soprano, **{
            system: tracks.max(axis=1).astype(np.float32) for system, tracks in voiced.items()
            if system not in ("test_data", *model_voices)}},
        "infilling": lambda: {"bernoulli": with_noise(*conditions["infilling"])},
        "continuation": lambda: {"bernoulli": with_noise(*conditions["continuation"])},
        "variation": dict,
    }
    test_overlaps = metrics.roll_overlaps(rolls, lowest, steps_per_bar)  # the calibration row of every task
    results, uncertainty = {}, {}
    for task in TASKS:
        given = conditions[task][1]
        task_keys = None if task == "unconditional" else keys
        generated_rolls = {"model": generated[task].astype(np.float32), **baselines[task]()}
        overlaps = {system: metrics.roll_overlaps(system_rolls, lowest, steps_per_bar)
                    for system, system_rolls in generated_rolls.items()} | {"test_data": test_overlaps}
        outputs = {**generated_rolls, "test_data": rolls}
        results[task] = scoring.score_rolls(outputs, overlaps, rolls, given, task_keys, train_overlaps, lowest)
        uncertainty[task] = metrics.bootstrap_summary(
            metrics.oa_bootstrap(overlaps, train_overlaps, num_resamples, seed))
        if task == "harmonization":
            merged = {f"{system}_merged": outputs[system] for system in model_voices}  # read by pitch order
            values, intervals = scoring.score_harmony({**outputs, **merged}, voiced, soprano, steps_per_quarter,
                                                      lowest, num_resamples, seed)
            for system in values:
                results[task].setdefault(system, {}).update(values[system])
                uncertainty[task].setdefault(system, {}).update(intervals[system])
        if task == "variation":  # how much of the source piece a variation keeps
            results[task]["model"].update({f"kept_{k}": v for k, v in metrics.note_precision_recall_f1(
                outputs["model"], rolls, lowest).items()})
        if output_dir:
            _export(output_dir, task, outputs, given, pitch_range, steps_per_quarter, num_midi)
    return results, uncertainty


def _export(output_dir: str, task: str, outputs: dict[str, np.ndarray], given: np.ndarray, pitch_range: PitchRange,
            steps_per_quarter: int, num_midi: int) -> None:
    """Every system's rolls, MIDI files of the first `num_midi` of them, and one figure comparing them."""
    root = run_path(output_dir)
    (root / "rolls").mkdir(parents=True, exist_ok=True)
    shards.save_npz(root / "rolls" / f"{task}.npz", {system: rolls.astype(bool) for system, rolls in outputs.items()})
    midi_dir = root / "midi" / task
    midi_dir.mkdir(parents=True, exist_ok=True)
    for system, rolls in outputs.items():
        for i, roll in enumerate(rolls[:num_midi]):
            ns = roll_to_note_sequence(roll, pitch_range, steps_per_quarter)
            note_sequence_to_midi_file(ns, midi_dir / f"{system}_{i:03d}.mid")
    (root / "figures").mkdir(parents=True, exist_ok=True)
    generated_steps = np.nonzero(~given[0].all(axis=-1))[0]
    gap = (int(generated_steps[0]), int(generated_steps[-1]) + 1) if given[0].any() and len(generated_steps) else None
    plots.piano_rolls({system: roll_to_notes(rolls[0], pitch_range.lowest_pitch) for system, rolls in outputs.items()},
                      num_steps=given.shape[1], path=str(root / "figures" / f"{task}.png"),
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
flags.DEFINE_integer("chunk_size", 16, "segments per generated chunk (the unit of resuming and of sharing the "
                     "work between processes)", flag_values=FLAGS)
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
    output_dir = FLAGS.output_dir or str(run_path(FLAGS.workdir) / "pianoroll_eval")
    topology.start(output_dir)  # jax.distributed from the launcher's environment; checks the device count
    joblog.setup(None if is_url(output_dir) else output_dir, "pianoroll_eval")
    enable_compilation_cache()
    task, params = configurables.load_trained(FLAGS.workdir, ema=True, step=FLAGS.checkpoint_step)
    statistics = tfds_io.load_metadata(tfds_io.dataset_dir(FLAGS.dataset, FLAGS.data_dir))
    pitch_range = PitchRange(statistics["lowest_pitch"], statistics["num_pitches"])
    test = load_segments(FLAGS.dataset, FLAGS.data_dir, "test", limit=FLAGS.num_segments)
    generator = PianorollGenerator(task, params, test["roll"].shape[1:], FLAGS.sampler, FLAGS.num_sampling_steps,
                                   conditioning=FLAGS.conditioning, num_resamplings=FLAGS.num_resamplings)
    generated_dir = str(run_path(output_dir) / GENERATED)
    step = FLAGS.checkpoint_step if FLAGS.checkpoint_step is not None else latest_step(FLAGS.workdir)
    run = {"workdir": FLAGS.workdir, "dataset": FLAGS.dataset, "checkpoint_step": step,
           "sampler": FLAGS.sampler, "num_sampling_steps": FLAGS.num_sampling_steps,
           "conditioning": FLAGS.conditioning, "num_resamplings": FLAGS.num_resamplings}
    generate(generator, test, generated_dir, FLAGS.chunk_size, FLAGS.seed, run)
    topology.wait_for_all("smdiff pianoroll-eval: chunks made")
    if jax.process_index() != 0:
        return
    generated = load_generated(generated_dir, len(test["roll"]), FLAGS.chunk_size)
    train_rolls = load_segments(FLAGS.dataset, FLAGS.data_dir, "train", original_key_only=True)["roll"]
    density = statistics["merged_density"] if test["roll"].ndim == 4 else statistics["density"]  # of merged rolls
    results, uncertainty = evaluate(generated, test, train_rolls, density, pitch_range,
                                    statistics["steps_per_quarter"], FLAGS.seed, output_dir)
    for name, value in (("metrics.json", results), ("bootstrap.json", uncertainty)):
        (run_path(output_dir) / name).write_text(json.dumps(value, indent=2))
    losses = losses_to_baseline(results, uncertainty=uncertainty)
    table = to_markdown(results, uncertainty) + "\n" + (
        "The model beats the Bernoulli baseline on every score." if not losses
        else "Scores where the model does not beat the Bernoulli baseline:\n" + "\n".join(f"- {x}" for x in losses))
    (run_path(output_dir) / "metrics.md").write_text(table)
    print(table)
