"""Figure and MIDI files of held-out sopranos harmonized by the model, the diatonic-triad rule baseline and Bach.

  python -m benchmarks.figure_harmonization --data_dir=data/tfds [--dataset=pianorolls/bach_chorales_voices] \
      [--workdir=workdirs/binomial_voices --checkpoint_step=N --conditioning=model --num_sampling_steps=30] \
      [--segments=0,5 --figure=docs/figures/chorales_harmonization_voices.png --midi_dir=docs/midi/harmonization]

For test segments `--segments` of the dataset (the test split and the first segments of it, as `pianoroll-eval`),
draws the given soprano (black) and the alto, tenor and bass of each system, one piano roll per segment and system,
and writes one MIDI file per segment and system (`<segment>_<system>.mid`, a track per voice, named). Systems: the
model of `--workdir` (omitted without it; sampling flags as `pianoroll-eval`'s), `rule`
(`pianoroll_baselines.rule_harmonization`) and `bach` (the test segment itself). The model's rolls are the ones
`pianoroll-eval` makes and scores for these segments with the same --seed, --chunk_size and sampling flags: the
chunks holding them are sampled with its keys. A model of voice-channel rolls ([T, P, 4]) gives its voices as its
channels; a merged-roll model's lower voices are read by pitch order under the soprano
(`harmony.harmonization_voices`: at most three, cells below them dropped).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from smdiff import configurables
from smdiff.data import tfds_io
from smdiff.data.melody import note_sequence_to_midi_file
from smdiff.data.pianoroll import PitchRange, channels_to_tracks, roll_to_notes, tracks_to_note_sequence
from smdiff.evaluation import plots
from smdiff.evaluation.harmony import harmonization_voices
from smdiff.generators.pianoroll import CONDITIONINGS, PianorollGenerator
from smdiff.generators.pianoroll_baselines import rule_harmonization, voices_to_tracks
from smdiff.pianoroll_eval import chunk_rolls, load_segments, task_conditions
from smdiff.sampling import shards
from smdiff.training.workdir import latest_step

VOICES = ("soprano", "alto", "tenor", "bass")
LEGEND = ("soprano (given)", *VOICES[1:])


def model_harmonizations(generator: PianorollGenerator, test: dict[str, np.ndarray], segments: Sequence[int],
                         chunk_size: int, seed: int, lowest_pitch: int) -> np.ndarray:
    """The model's harmonizations of test segments `segments` as voice-separated rolls bool [len(segments), 4, T, P].

    test: the first segments of the test split (`load_segments`), up to the end of the chunks of `chunk_size`
    holding `segments`; those chunks are made by `pianoroll_eval.chunk_rolls` as `pianoroll_eval.generate` makes
    them, so the rolls are the ones it makes with the same seed, chunk size and generator.
    """
    conditions = task_conditions(test)
    made = {}
    for chunk in shards.plan_chunks(len(test["roll"]), chunk_size):
        rows = range(chunk.start, chunk.start + chunk.size)
        if set(rows) & set(segments):
            made.update(zip(rows, chunk_rolls(generator, "harmonization", conditions, chunk, seed)))
    rolls = np.stack([made[segment] for segment in segments])
    if rolls.ndim == 4:  # voice channels [n, T, P, V]
        return channels_to_tracks(rolls)
    num_pitches = rolls.shape[-1]
    return np.stack([voices_to_tracks(harmonization_voices(roll, test["tracks"][segment, 0], lowest_pitch)[0],
                                      num_pitches, lowest_pitch)
                     for roll, segment in zip(rolls, segments)]).astype(bool)


def harmonizations(test: dict[str, np.ndarray], segments: Sequence[int], steps_per_quarter: int, lowest_pitch: int,
                   model: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{system: voice-separated rolls bool [len(segments), 4, T, P]} of the test segments `segments`: 'model' (the
    given `model_harmonizations`, when given), 'rule' (diatonic triads under the soprano) and 'bach'."""
    bach = np.asarray(test["tracks"])[list(segments)].astype(bool)  # [n, 4, T, P]
    rule = np.stack([rule_harmonization(voices[0], steps_per_quarter, lowest_pitch) for voices in bach])
    return {**({"model": model} if model is not None else {}), "rule": rule.astype(bool), "bach": bach}


def write_midi(systems: dict[str, np.ndarray], segments: Sequence[int], pitch_range: PitchRange,
               steps_per_quarter: int, midi_dir: str) -> list[str]:
    """One MIDI file per segment and system (`harmonizations`' rolls), a track per voice named as VOICES;
    returns their paths."""
    paths = []
    for system, tracks in systems.items():
        for segment, voices in zip(segments, tracks):
            paths.append(f"{midi_dir}/{segment:03d}_{system}.mid")
            note_sequence_to_midi_file(tracks_to_note_sequence(voices, pitch_range, steps_per_quarter, VOICES),
                                       paths[-1])
    return paths


def draw(systems: dict[str, np.ndarray], segments: Sequence[int], pieces: Sequence[str], lowest_pitch: int,
         path: str, labels: dict[str, str] | None = None) -> None:
    """One piano roll per segment and system (`harmonizations`' rolls), the given soprano in black; `labels`
    names the systems (default: their keys)."""
    labels = labels or {}
    rolls = {f"test segment {segment} ({piece}): {labels.get(system, system)}":
             {voice: roll_to_notes(track, lowest_pitch) for voice, track in zip(LEGEND, systems[system][i])}
             for i, (segment, piece) in enumerate(zip(segments, pieces)) for system in systems}
    num_steps = next(iter(systems.values())).shape[2]
    plots.piano_rolls(rolls, num_steps, path, title="Harmonizing held-out sopranos", same_pitch_range=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--dataset", default="pianorolls/bach_chorales_voices")
    parser.add_argument("--workdir", default=None, help="a BinomialTask training workdir (default: no model)")
    parser.add_argument("--checkpoint_step", type=int, default=None, help="default: the latest")
    parser.add_argument("--sampler", default="posterior")
    parser.add_argument("--num_sampling_steps", type=int, default=None, help="default: all T")
    parser.add_argument("--conditioning", default="clamp", choices=CONDITIONINGS)
    parser.add_argument("--num_resamplings", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk_size", type=int, default=16, help="as pianoroll-eval's (the rolls depend on it)")
    parser.add_argument("--segments", default="0", help="test segment indices, comma-separated")
    parser.add_argument("--figure", default="docs/figures/chorales_harmonization_voices.png")
    parser.add_argument("--midi_dir", default="docs/midi/harmonization")
    args = parser.parse_args(argv)
    segments = [int(segment) for segment in args.segments.split(",")]

    statistics = tfds_io.load_metadata(tfds_io.dataset_dir(args.dataset, args.data_dir))
    pitch_range = PitchRange(statistics["lowest_pitch"], statistics["num_pitches"])
    steps_per_quarter = statistics["steps_per_quarter"]
    test = load_segments(args.dataset, args.data_dir, "test", limit=(max(segments) // args.chunk_size + 1)
                         * args.chunk_size)
    model, labels = None, {"rule": "rule (diatonic triads)", "bach": "Bach"}
    if args.workdir:
        task, params = configurables.load_trained(args.workdir, ema=True, step=args.checkpoint_step)
        generator = PianorollGenerator(task, params, test["roll"].shape[1:], args.sampler, args.num_sampling_steps,
                                       conditioning=args.conditioning, num_resamplings=args.num_resamplings)
        model = model_harmonizations(generator, test, segments, args.chunk_size, args.seed, pitch_range.lowest_pitch)
        step = args.checkpoint_step if args.checkpoint_step is not None else latest_step(args.workdir)
        labels["model"] = (f"model (step {step}, conditioning={args.conditioning}, "
                           f"{args.num_sampling_steps or task.process.num_steps} sampling steps)")
    systems = harmonizations(test, segments, steps_per_quarter, pitch_range.lowest_pitch, model)
    draw(systems, segments, [str(test["piece"][segment]) for segment in segments], pitch_range.lowest_pitch,
         args.figure, labels)
    for path in [args.figure, *write_midi(systems, segments, pitch_range, steps_per_quarter, args.midi_dir)]:
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
