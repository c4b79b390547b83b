"""The evaluation job: the paper's Table 1 (both OA readings), latent FD/MMD, note statistics, figures.

    smdiff evaluate --samples_dir=samples --data_dir=data/tfds --windows=melody_windows/embedded \\
        --latents=melody_latents/embedded --output_dir=eval

`--samples_dir` holds one folder per generator (`diffusion/`, `mdn/`, `interpolation/`, `prior/`), each with
the chunks `smdiff sample` wrote for the modes `unconditional` and `infilling` (Table 1), `continuation`
(its own table, scored like infilling) and `variation` (one strength per folder: the generator's folder
and its sub-folders, e.g. `diffusion/variation_0.25/` from `smdiff sample --mode=variation
--variation_strength=0.25 --output_dir=samples/diffusion/variation_0.25`); whatever is present is
evaluated, whatever is missing shows as "-". The ground truth (GT) of the OA metric is the training split
of the melody windows (up to --max_reference windows, drawn with --seed); the Train and Test rows are
--num_real random windows of each split measured against it. Latent FD and MMD compare each generator's
latents with the test split's latents. Every OA score carries a 90% bootstrap interval over resamples
of its set (whole tunes for the Train and Test rows, whose windows overlap). Variations are also
scored by their similarity to the test window they vary.

Writes to --output_dir: table1.md and table1.json (the table under the paper's 'pooled' reading, then the
continuation and variation tables when there are such samples; every other figure in the JSON),
table1_per_sequence.md (the other reading), variation.json, figures/*.png, and the table's
cells and figures as TensorBoard summaries (`tensorboard/`, `metrics.jsonl`); with --wandb_project, to
W&B as well (WANDB_MODE=offline works without network).
"""
from __future__ import annotations

import json
from typing import Sequence

import matplotlib.image
import numpy as np
from absl import app, flags, logging
from etils import epath

from smdiff import jobflags, joblog
from smdiff.data import tfds_io
from smdiff.evaluation import melody_sets, plots, scoring, table
from smdiff.evaluation.notes import events_to_notes
from smdiff.generators.registry import GENERATORS
from smdiff.sampling import shards, store
from smdiff.training.loop_helpers import enable_compilation_cache
from smdiff.training.paths import run_path
from smdiff.training.writers import create_writer

ROW_NAMES = {name: registration.table_row for name, registration in GENERATORS.items()}
TABLE_MODES = table.TASKS  # the sampling modes Table 1 shows
SET_MODES = TABLE_MODES + ("continuation",)  # the modes scored as sets against the training windows


def evaluate(samples_dir: str, train_events: np.ndarray, test_events: np.ndarray, output_dir: str,
             test_latents: np.ndarray | None = None, known_events: np.ndarray | None = None,
             num_real: int = 1000, max_reference: int | None = None, seed: int = 0,
             wandb_project: str | None = None, train_tunes: np.ndarray | None = None,
             test_tunes: np.ndarray | None = None) -> dict:
    """Computes and writes everything; returns the JSON-able results.

    Args:
      samples_dir: one sub-folder per generator with `smdiff sample` chunks.
      train_events: [m, steps] training windows, the GT set (up to `max_reference` of them, drawn at random).
      test_events: [m', steps] held-out windows (the Test row).
      test_latents: [m'', k, d] scaled test latents, the pool conditional modes drew from, for FD/MMD.
      known_events: [m'', steps] the real melody of each test latent window (the figures' "real" row).
      num_real: windows of each split in the Train and Test rows.
      wandb_project: also log the table and figures to this W&B project.
      train_tunes, test_tunes: [m], [m'] each window's tune (song id): the Train and Test rows' intervals
        then resample whole tunes (a tune's windows overlap, so they are not independent draws).
    """
    rng = np.random.default_rng(seed)
    ground_truth = melody_sets.set_overlaps(melody_sets.reference_windows(train_events, max_reference, rng))

    def real_rows(events, tunes):
        chosen = rng.choice(len(events), min(num_real, len(events)), replace=False)
        report = melody_sets.report(melody_sets.set_overlaps(events[chosen]), ground_truth,
                                    groups=None if tunes is None else np.asarray(tunes)[chosen])
        return {mode: report for mode in SET_MODES}  # real data is the same for every mode

    results = {"Train": real_rows(train_events, train_tunes), "Test": real_rows(test_events, test_tunes)}
    samples, specs = {}, {}
    for generator, row in ROW_NAMES.items():
        for mode in SET_MODES:
            folder = str(run_path(samples_dir) / generator)
            try:
                samples[generator, mode] = store.load_samples(folder, mode)
            except FileNotFoundError:
                continue
            specs[generator, mode] = store.load_spec(folder, mode)
            logging.info("evaluating %d %s %s samples", len(samples[generator, mode]["events"]), generator, mode)
            results.setdefault(row, {})[mode] = scoring.score(
                samples[generator, mode]["events"], ground_truth, samples[generator, mode]["latents"], test_latents)
    if len(results) == 2:
        raise FileNotFoundError(f"no generator folder with completed chunks under {samples_dir} "
                                f"(expected some of {sorted(ROW_NAMES)})")
    variations = variation_results(samples_dir, known_events, ground_truth, test_latents, rng)
    _write_outputs(results, samples, specs, known_events, ground_truth, output_dir, variations)
    log_results(results, output_dir, wandb_project)
    return results


def variation_results(samples_dir: str, known_events: np.ndarray | None, ground_truth: melody_sets.SetOverlaps,
                      test_latents: np.ndarray | None, rng: np.random.Generator) -> dict:
    """row -> {strength: report}: every set of variations under a generator's folder (the folder itself and
    its sub-folders, one strength each, e.g. `diffusion/variation_0.25/`) scored as a set like Table 1's
    rows and by its similarity to its sources (`melody_sets.source_similarity`), plus the reference row
    'Test (another window)': each source against another test window, what a variation that forgot its
    source scores. With the test latents, also the RMS distance of the latents to the source's
    ('source_latent_rms'), which the VAE's decoding errors do not blur. Empty when there are no variations."""
    results = {}
    for generator, row in ROW_NAMES.items():
        folder = run_path(samples_dir) / generator
        candidates = [folder] + (sorted(path for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else [])
        for candidate in map(str, candidates):
            if not shards.completed_chunks(candidate, "variation"):
                continue
            if known_events is None:
                raise ValueError(f"scoring the variations in {candidate} needs the test windows they vary "
                                 "(known_events)")
            arrays = store.load_samples(candidate, "variation")
            strength = store.load_spec(candidate, "variation").variation_strength
            if strength in results.get(row, {}):
                raise ValueError(f"two sets of {generator} variations at strength {strength} (one is in {candidate})")
            logging.info("evaluating %d %s variations at strength %g", len(arrays["events"]), generator, strength)
            report = scoring.score(arrays["events"], ground_truth, arrays["latents"], test_latents)
            report["source_similarity"] = melody_sets.source_similarity(arrays["events"],
                                                                        known_events[arrays["known_index"]])
            if test_latents is not None:
                report["source_latent_rms"] = _rms(arrays["latents"], test_latents[arrays["known_index"]])
            results.setdefault(row, {})[strength] = report
    if results:
        others = rng.permutation(len(known_events))
        reference = scoring.score(known_events[others], ground_truth)
        reference["source_similarity"] = melody_sets.source_similarity(known_events[others], known_events)
        if test_latents is not None:
            reference["source_latent_rms"] = _rms(test_latents[others], test_latents)
        results["Test (another window)"] = {None: reference}
    return results


def _rms(x: np.ndarray, y: np.ndarray) -> float:
    """Root mean square difference of two latent sets [n, k, d] (scaled space), element by element."""
    return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64) - np.asarray(y, np.float64)))))


def log_results(results: dict, output_dir: str, wandb_project: str | None = None) -> None:
    """Every Table 1 cell as a scalar ('<row>/<mode>/<feature>_C'), latent FD/MMD, and the PNG figures, through
    the training core's writers (TensorBoard and JSON lines in output_dir; W&B when a project is given)."""
    scalars = {f"{row}/{mode}/{key}": value for row, modes in results.items() for mode, report in modes.items()
               for key, value in scoring.headline(report).items()}
    images = {}
    for path in sorted(run_path(output_dir).glob("figures/*.png")):
        with path.open("rb") as file:
            images[f"figures/{path.stem}"] = (matplotlib.image.imread(file, format="png")[None, ..., :3] * 255
                                              ).astype(np.uint8)
    writer = create_writer(output_dir, wandb_project, config={"job": "evaluate"})
    writer.write_scalars(0, scalars)
    writer.write_images(0, images)
    writer.close()


def _table_view(results: dict, key: str) -> dict:
    return {row: {mode: report[key] for mode, report in modes.items()} for row, modes in results.items()}


def _write_outputs(results, samples, specs, known_events, ground_truth, output_dir, variations) -> None:
    output = run_path(output_dir)
    figures = output / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    interval_note = f"value ({melody_sets.CONFIDENCE:.0%} bootstrap interval over resampled samples)"
    markdown = table.to_markdown(_table_view(results, "table"), f"Measured (pooled reading): {interval_note}",
                                 _table_view(results, "interval_pooled"))
    if any("continuation" in modes for row, modes in results.items() if row not in ("Train", "Test")):
        markdown += "\n" + table.to_markdown(
            _table_view(results, "table"), f"Measured continuation of the first half (pooled reading): {interval_note}",
            _table_view(results, "interval_pooled"), tasks=("continuation",))
    if variations:
        markdown += "\n" + table.variation_markdown(
            variations, f"Measured variations: similarity to the source (mean OA of aligned frames) and the "
                        f"pooled C and Var; {interval_note}")
        (output / "variation.json").write_text(json.dumps(
            {row: {str(strength): report for strength, report in by_strength.items()}
             for row, by_strength in variations.items()}, indent=1))
    markdown += "\n" + table.to_markdown(table.paper_results(), "Paper, Table 1 (LMD, k=32)")
    (output / "table1.md").write_text(markdown)
    (output / "table1_per_sequence.md").write_text(
        table.to_markdown(_table_view(results, "relative_per_sequence"),
                          f"Measured (per-sequence reading): {interval_note}", _table_view(results, "interval_per_sequence")))
    (output / "table1.json").write_text(json.dumps(results, indent=1))
    print(markdown)

    for feature in melody_sets.FEATURES:
        distributions = {"train (GT)": np.concatenate(ground_truth.per_melody[feature])}
        for (generator, mode), arrays in samples.items():
            if mode == "unconditional":
                oas = melody_sets.set_overlaps(arrays["events"]).per_melody[feature]
                distributions[ROW_NAMES[generator]] = np.concatenate(oas)
        plots.overlap_distributions(distributions, str(figures / f"oa_{feature}.png"), feature)
    _infilling_figure(samples, specs, known_events, figures)


def _infilling_figure(samples: dict, specs: dict, known_events: np.ndarray | None, figures: epath.Path,
                      examples: int = 2) -> None:
    """Paper Fig. 2: for the first examples, the real window and each generator's infill of its gap."""
    infills = {generator: arrays for (generator, mode), arrays in samples.items() if mode == "infilling"}
    if not infills:
        return
    first_generator, first = next(iter(infills.items()))
    num_steps, window_chunks = first["events"].shape[1], first["latents"].shape[1]
    mask = specs[first_generator, "infilling"].known_mask(window_chunks)
    missing = np.flatnonzero(~mask)
    steps_per_latent = num_steps // window_chunks
    gap = (int(missing[0]) * steps_per_latent, (int(missing[-1]) + 1) * steps_per_latent)
    for example in range(min(examples, len(first["events"]))):
        known_index = int(first["known_index"][example])
        rolls = {} if known_events is None else {"real (test window)": events_to_notes(known_events[known_index])}
        for generator, arrays in infills.items():
            rolls[ROW_NAMES[generator]] = events_to_notes(arrays["events"][example])
        plots.piano_rolls(rolls, num_steps, str(figures / f"infilling_example_{example}.png"), gap,
                          title=f"Infilling the shaded gap of test window {known_index}")


FLAGS = jobflags.namespace()
flags.DEFINE_string("samples_dir", None, "folder with one sub-folder of chunks per generator", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "where the table and figures go", flag_values=FLAGS)
jobflags.define_melody_reference(FLAGS)  # --data_dir, --windows (GT, Train and Test rows), --latents, --max_reference
flags.DEFINE_integer("num_real", 1000, "windows of each split in the Train and Test rows", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the random draws", flag_values=FLAGS)
flags.DEFINE_string("wandb_project", None, "also log the table and figures to this W&B project", flag_values=FLAGS)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    if not FLAGS.samples_dir or not FLAGS.output_dir:
        raise app.UsageError("--samples_dir and --output_dir are required")
    joblog.setup(FLAGS.output_dir, "evaluate")
    enable_compilation_cache()
    train_events, train_keys = tfds_io.load_window_events(FLAGS.windows, "train", FLAGS.data_dir)
    test_events, test_keys = tfds_io.load_window_events(FLAGS.windows, "test", FLAGS.data_dir)
    latents = tfds_io.load_split(FLAGS.latents, "test", FLAGS.data_dir, ["latents", "song_id", "start_chunk"])
    test_latents, latent_keys = latents["latents"].astype(np.float32), tfds_io.window_keys(latents)
    events_by_key = dict(zip(test_keys, test_events))  # a song's doubled melodies share a key: any one will do
    known_events = np.stack([events_by_key[key] for key in latent_keys])
    evaluate(FLAGS.samples_dir, train_events, test_events, FLAGS.output_dir, test_latents, known_events,
             FLAGS.num_real, FLAGS.max_reference, FLAGS.seed, FLAGS.wandb_project,
             train_tunes=np.array([song for song, _ in train_keys]),
             test_tunes=np.array([song for song, _ in test_keys]))
