"""Conditioning methods for harmonizing the held-out chorales' sopranos, on the same compute: the conditioned U-Net
(it reads the soprano as input channels), the paper's clamping, and clamping plus RePaint-style resampling (no
retraining).

  python -m benchmarks.bench_harmony_conditioning --conditioned_workdir=workdirs/binomial_cond \
      --data_dir=data/tfds [--clamping_workdir=workdirs/binomial_cpu] [--checkpoint_step=N] \
      [--num_denoiser_calls=50 --resamplings=5] [--num_segments=0 (all)] [--no_append]

Every method makes `num_denoiser_calls` U-Net calls per sample with the exact posterior sampler: the conditioned
and the clamping runs take that many reverse steps, RePaint takes num_denoiser_calls / resamplings steps of
`resamplings` calls each. Clamping uses `--clamping_workdir`'s U-Net trained without conditioning inputs (trained
alike: same config but the conditioning, same `--checkpoint_step`), or by default the conditioned U-Net itself
reading an empty mask (the same weights for all three methods). Scored with `scoring.score_harmony` on the test split (90% paired-bootstrap intervals
over segments), beside the calibration rows of `pianoroll-eval`'s harmonization (Bach, another chorale's voices
transposed, the rule baseline, the melody alone, Bernoulli noise).

With --common_key_dataset=pianorolls/bach_chorales_c (the dataset the models were trained on, every chorale in
C major / A minor) every method harmonizes each test soprano moved to the common key by the key estimated from it
and moves the result back (`smdiff.generators.common_key`); the scoring is unchanged, in the original keys.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import jax
import numpy as np

from benchmarks import report
from smdiff import configurables
from smdiff.data import tfds_io
from smdiff.data.keys import MODES, Key
from smdiff.data.pianoroll import PitchRange
from smdiff.evaluation import scoring
from smdiff.evaluation import pianoroll_metrics as metrics
from smdiff.generators import common_key, pianoroll_baselines
from smdiff.generators.pianoroll import PianorollGenerator, melody_mask
from smdiff.pianoroll_eval import load_segments


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conditioned_workdir", required=True)
    parser.add_argument("--clamping_workdir", default=None, help="default: the conditioned U-Net, empty mask")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--dataset", default="pianorolls/bach_chorales")
    parser.add_argument("--common_key_dataset", default=None,
                        help="the models' training data, in C major / A minor (e.g. pianorolls/bach_chorales_c)")
    parser.add_argument("--checkpoint_step", type=int, default=None, help="of both runs (default: each one's latest)")
    parser.add_argument("--num_denoiser_calls", type=int, default=50)
    parser.add_argument("--resamplings", type=int, default=5)
    parser.add_argument("--num_segments", type=int, default=0, help="test segments (0: all)")
    parser.add_argument("--num_resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)
    if args.num_denoiser_calls % args.resamplings:
        raise ValueError(f"--num_denoiser_calls {args.num_denoiser_calls} must divide by --resamplings")

    statistics = tfds_io.load_metadata(tfds_io.dataset_dir(args.dataset, args.data_dir))
    lowest, spq = statistics["lowest_pitch"], statistics["steps_per_quarter"]
    test = load_segments(args.dataset, args.data_dir, "test", limit=args.num_segments or None)
    soprano = test["tracks"][:, 0].astype(np.float32)
    keys = [Key(int(tonic), MODES[int(mode)]) for tonic, mode in zip(test["key_tonic"], test["key_mode"])]
    conditioned = configurables.load_trained(args.conditioned_workdir, ema=True, step=args.checkpoint_step)
    clamping = conditioned if args.clamping_workdir is None else configurables.load_trained(
        args.clamping_workdir, ema=True, step=args.checkpoint_step)
    if not conditioned[0].conditioned:
        raise ValueError(f"{args.conditioned_workdir} holds a U-Net without conditioning inputs")
    pitch_range = PitchRange(lowest, statistics["num_pitches"])
    model_range = pitch_range
    if args.common_key_dataset:
        model_statistics = tfds_io.load_metadata(tfds_io.dataset_dir(args.common_key_dataset, args.data_dir))
        if not model_statistics.get("common_key"):
            raise ValueError(f"{args.common_key_dataset} is not in a common key (its metadata has no common_key)")
        model_range = PitchRange(model_statistics["lowest_pitch"], model_statistics["num_pitches"])
    shape = (soprano.shape[1], model_range.num_pitches)
    calls, resamplings = args.num_denoiser_calls, args.resamplings
    methods = {  # name: (model, generator options)
        "conditioned": (conditioned, dict(conditioning="model", num_sampling_steps=calls)),
        "clamping": (clamping, dict(conditioning="clamp", num_sampling_steps=calls)),
        f"clamping_repaint_x{resamplings}": (clamping, dict(conditioning="clamp", num_sampling_steps=calls // resamplings,
                                                             num_resamplings=resamplings)),
    }
    outputs, seconds, dropped = {}, {}, {}
    rng = jax.random.PRNGKey(args.seed)
    for name, ((task, params), options) in methods.items():
        start = time.perf_counter()
        generator = PianorollGenerator(task, params, shape, "posterior", **options)
        if args.common_key_dataset:
            rolls, shifts, dropped[name] = common_key.harmonize(generator, rng, soprano, pitch_range, model_range)
        else:
            rolls = generator.harmonize(rng, soprano)
        outputs[name] = np.asarray(rolls)
        seconds[name] = time.perf_counter() - start
        if not (outputs[name][melody_mask(soprano)] == soprano[melody_mask(soprano)]).all():
            raise AssertionError(f"{name} changed the given soprano")

    voiced = {"test_data": test["tracks"], **pianoroll_baselines.harmonization_baselines(
        test["tracks"], keys, test["piece"], spq, lowest)}
    noise = metrics.bernoulli_rolls(np.random.default_rng(args.seed), soprano.shape, statistics["density"])
    outputs |= {"bernoulli": np.where(melody_mask(soprano), soprano, noise), "melody_only": soprano}
    values, intervals = scoring.score_harmony(outputs, voiced, soprano, spq, lowest, args.num_resamples, args.seed)

    rows = scoring.harmony_rows(values, intervals)
    steps = {os.path.basename(w.rstrip("/")): args.checkpoint_step or "latest"
             for w in (args.conditioned_workdir, args.clamping_workdir) if w}
    notes = (f"{len(soprano)} test segments; every model row makes {calls} U-Net calls per sample (exact posterior "
             f"sampler; RePaint: {calls // resamplings} steps x {resamplings}); checkpoints {steps}. Sampling wall "
             f"time: " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()) +
             f" (load average {os.getloadavg()[0]:.1f} at the end). Value (90% paired-bootstrap interval, "
             f"{args.num_resamples} resamples of the segments); crossing only for voice-separated rows (the models' "
             f"single-channel rolls are read by pitch order, which cannot cross); n/a: nothing to score.")
    if args.common_key_dataset:
        notes += (f" Models trained on {args.common_key_dataset}: each soprano moved to C major / A minor by its "
                  f"estimated key (segments per shift in semitones: "
                  f"{dict(sorted(collections.Counter(shifts.tolist()).items()))}), "
                  f"harmonized, moved back; generated cells moved outside the test roll's range and dropped: "
                  f"{dropped}.")
    report.publish("Harmonization: conditioned U-Net vs clamping vs clamping + RePaint",
                   "python -m benchmarks.bench_harmony_conditioning " + " ".join(argv), rows, notes,
                   append=not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
