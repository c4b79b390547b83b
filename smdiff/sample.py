"""The sampling job: thousands of latent sequences from any generator, decoded to melodies, sharded and
resumable (t5x `infer` style).

    smdiff sample --generator=diffusion --prior_workdir=workdirs/ddpm --vae_workdir=workdirs/vae \\
        --latents=melody_latents/embedded --data_dir=data/tfds --task=unconditional --task=infilling \\
        --output_dir=samples/ddpm

Generators: `diffusion` (DDPM over all N steps, or DDIM with --num_steps/--eta), `mdn` (at
--temperature), `interpolation` (slerp between real latents of the test split; --interpolation_space=full,
the default, slerps the whole z with noise-refilled unused dims as the released code, `active` the active
dims only), `prior` (N(0, I) draws).
Tasks: `unconditional`, `infilling` (default mask: the middle half of the k latents; the paper's middle 16
of 32), `continuation` (the first --num_known latents given), `variation` (diffusion only: test windows
noised to --variation_strength and denoised). Conditional tasks take their known latents from the test
split of the latent dataset, window i % (test size) for sample i.

Output: `<output_dir>/<task>-00003-of-00008/` chunks, each holding `samples.npz` (`latents` [n, k, d] in the
priors' space, `events` [n, k * 32], `sample_index` [n], `known_index` [n] for conditional tasks) and
`midi/<sample_index>.mid`, plus a DONE.json marker (see smdiff/sampling/shards.py). Every chunk's
randomness is derived from (--seed, chunk index), so a chunk is the same whichever shard makes it; a re-run
skips finished chunks and redoes a half-written one. Shards default to the process index and count.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Sequence

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags, logging
from tqdm import tqdm

from smdiff import flag_defs
from smdiff.data import melody
from smdiff.codec.latent_codec import LatentScaling
from smdiff.generators import base
from smdiff.sampling import shards
from smdiff.sampling.decode import LatentDecoder

GENERATORS = ("diffusion", "mdn", "interpolation", "prior")
TASKS = ("unconditional", "infilling", "continuation", "variation")


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """What to make: `task` with its mask or strength, how many samples, how they are cut and seeded."""

    task: str = "unconditional"
    num_samples: int = 1000
    chunk_size: int = 250
    seed: int = 0
    num_missing: int | None = None  # infilling: the middle `num_missing` latents (default k // 2)
    num_known: int | None = None  # continuation: the first `num_known` latents (default k // 2)
    variation_strength: float = 0.5
    write_midi: bool = True

    def known_mask(self, sequence_length: int) -> np.ndarray | None:
        """known_mask [k] of a conditional task (True = given), None for unconditional and variation."""
        half = sequence_length // 2
        if self.task == "infilling":
            return base.paper_infill_mask(sequence_length, self.num_missing or half)
        if self.task == "continuation":
            return base.prefix_mask(sequence_length, half if self.num_known is None else self.num_known)
        return None


def load_latent_split(builder: tfds.core.DatasetBuilder, split: str) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """All scaled latents of a split of a prepared melody_latents dataset, float32 [m, k, d], and each
    window's (song_id, start_chunk), which names it in the melody_windows dataset too."""
    dataset = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    latents, keys = [], []
    for example in dataset:
        latents.append(example["latents"])
        keys.append((example["song_id"].decode(), int(example["start_chunk"])))
    if not latents:
        raise ValueError(f"split {split!r} of {builder.info.full_name} is empty")
    return np.stack(latents).astype(np.float32), keys


def generate(generator, spec: SamplingSpec, rng: jax.Array, known: np.ndarray | None, sequence_length: int,
             num_samples: int) -> np.ndarray:
    """One chunk of samples x [num_samples, k, d] for `spec.task`."""
    if spec.task == "unconditional":
        return np.asarray(generator.sample(rng, num_samples))
    if spec.task == "variation":
        if not hasattr(generator, "variation"):
            raise base.UnsupportedTaskError(f"{type(generator).__name__} cannot make variations")
        return np.asarray(generator.variation(rng, known, spec.variation_strength))
    return np.asarray(generator.infill(rng, known, spec.known_mask(sequence_length)))


def run(generator, decoder: LatentDecoder, spec: SamplingSpec, output_dir: str, sequence_length: int,
        known_pool: np.ndarray | None = None, shard_id: int | None = None, num_shards: int | None = None,
        metadata: dict | None = None) -> list[str]:
    """Makes this shard's chunks of `spec` in `output_dir`; returns every completed chunk folder of the task.

    Args:
      generator: a `smdiff.generators.base.Generator` (variation needs a diffusion generator).
      decoder: scaled latents -> events.
      known_pool: [m, k, d] real latents that conditional tasks take their given positions from.
    """
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r}; expected one of {TASKS}")
    conditional = spec.task != "unconditional"
    if conditional and (known_pool is None or not len(known_pool)):
        raise ValueError(f"task {spec.task!r} needs real latents to condition on (known_pool)")
    shard_id = jax.process_index() if shard_id is None else shard_id
    num_shards = jax.process_count() if num_shards is None else num_shards
    mine = shards.shard_chunks(shards.plan_chunks(spec.num_samples, spec.chunk_size), shard_id, num_shards)
    todo = [chunk for chunk in mine if not shards.is_complete(output_dir, spec.task, chunk)]
    logging.info("shard %d/%d: %d of its %d chunks to make in %s", shard_id, num_shards, len(todo), len(mine),
                 output_dir)
    os.makedirs(output_dir, exist_ok=True)
    base_key = jax.random.PRNGKey(spec.seed)
    progress = tqdm(total=sum(chunk.size for chunk in todo), desc=f"{spec.task} samples", unit=" samples")
    for chunk in todo:
        sample_key, decode_key = jax.random.split(jax.random.fold_in(base_key, chunk.index))
        sample_index = np.arange(chunk.start, chunk.start + chunk.size)
        known_index = sample_index % len(known_pool) if conditional else None
        known = known_pool[known_index] if conditional else None
        start = time.perf_counter()
        latents = generate(generator, spec, sample_key, known, sequence_length, chunk.size)
        events = decoder(decode_key, latents)
        seconds = time.perf_counter() - start

        def write_files(folder, latents=latents, events=events, sample_index=sample_index,
                        known_index=known_index):
            arrays = {"latents": latents, "events": events.astype(np.int16), "sample_index": sample_index}
            if known_index is not None:
                arrays["known_index"] = known_index
            np.savez_compressed(os.path.join(folder, "samples.npz"), **arrays)
            if spec.write_midi:
                for index, melody_events in zip(sample_index, events):
                    ns = melody.events_to_note_sequence(melody_events)
                    melody.note_sequence_to_midi_file(ns, os.path.join(folder, "midi", f"{index:06d}.mid"))
            return {"seconds": round(seconds, 3), "samples_per_second": round(chunk.size / seconds, 2)}

        shards.write_chunk(output_dir, spec.task, chunk, write_files,
                           {**(metadata or {}), **dataclasses.asdict(spec)})
        progress.update(chunk.size)
        progress.set_postfix(samples_per_s=f"{chunk.size / seconds:.1f}")
    progress.close()
    return shards.completed_chunks(output_dir, spec.task)


def load_samples(output_dir: str, task: str) -> dict[str, np.ndarray]:
    """The arrays of every completed chunk of `task` in `output_dir`, concatenated in sample order."""
    folders = shards.completed_chunks(output_dir, task)
    if not folders:
        raise FileNotFoundError(f"no completed {task!r} chunks in {output_dir}")
    parts = [np.load(os.path.join(folder, "samples.npz")) for folder in folders]
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0].files}
    order = np.argsort(arrays["sample_index"])
    return {key: value[order] for key, value in arrays.items()}


def load_spec(output_dir: str, task: str) -> SamplingSpec:
    """The SamplingSpec a finished run of `task` in `output_dir` was made with (from its first marker)."""
    folders = shards.completed_chunks(output_dir, task)
    if not folders:
        raise FileNotFoundError(f"no completed {task!r} chunks in {output_dir}")
    with open(os.path.join(folders[0], shards.DONE_MARKER)) as f:
        marker = json.load(f)
    return SamplingSpec(**{field.name: marker[field.name] for field in dataclasses.fields(SamplingSpec)})


def build_generator(name: str, prior_workdir: str | None, scaling: LatentScaling, held_latents: np.ndarray,
                    sampler: str = "ddpm", num_steps: int | None = None, eta: float = 0.0,
                    temperature: float = 1.0, ema: bool = True, interpolation_space: str = "full"):
    """A generator by name; learned ones come from their train workdir (EMA params where kept)."""
    sequence_length = held_latents.shape[1]
    if name == "diffusion":
        from smdiff.generators.diffusion import DiffusionGenerator

        return DiffusionGenerator.from_workdir(_required(prior_workdir, name), sequence_length, ema=ema,
                                               sampler=sampler, num_steps=num_steps, eta=eta)
    if name == "mdn":
        from smdiff.generators.mdn import MDNGenerator
        from smdiff.training.loop import load_trained

        task, params = load_trained(_required(prior_workdir, name), ema=ema)
        return MDNGenerator(task.model, params, sequence_length=sequence_length, temperature=temperature)
    if name == "interpolation":
        from smdiff.generators.baselines import InterpolationGenerator

        return InterpolationGenerator(scaling, held_latents, space=interpolation_space)
    if name == "prior":
        from smdiff.generators.baselines import PriorGenerator

        return PriorGenerator(scaling, sequence_length)
    raise ValueError(f"unknown generator {name!r}; expected one of {GENERATORS}")


def _required(prior_workdir: str | None, generator: str) -> str:
    if not prior_workdir:
        raise app.UsageError(f"--prior_workdir is required for the {generator} generator")
    return prior_workdir


def load_vae_decoder(vae_workdir: str, scaling: LatentScaling) -> LatentDecoder:
    from smdiff.training.loop import load_trained

    task, params = load_trained(vae_workdir, ema=True)
    return LatentDecoder(task.model, params, scaling)


def define_flags() -> None:
    flag_defs.define("enum", "generator", "diffusion", "which generator to sample", enum_values=GENERATORS)
    flag_defs.define("string", "prior_workdir", None, "train workdir of the diffusion or MDN prior")
    flag_defs.define("string", "vae_workdir", None, "train workdir of the melody VAE that decodes the latents")
    flag_defs.define("string", "latents", "melody_latents/embedded", "the prepared latent dataset (name/config)")
    flag_defs.define("string", "data_dir", "data/tfds", "TFDS data_dir holding the latent dataset")
    flag_defs.define("multi_enum", "task", ["unconditional"], "what to generate; repeat the flag for several "
                     "tasks in one run (each has its own chunks)", enum_values=TASKS)
    flag_defs.define("string", "output_dir", None, "where the chunks go")
    flag_defs.define("integer", "num_samples", 1000, "samples in the whole run (all shards)")
    flag_defs.define("integer", "chunk_size", 250, "samples per chunk")
    flag_defs.define("integer", "seed", 0, "seed of the run; chunk i uses fold_in(seed, i)")
    flag_defs.define("integer", "num_missing", None, "infilling: latents missing in the middle (default k // 2)")
    flag_defs.define("integer", "num_known", None, "continuation: latents given at the start (default k // 2)")
    flag_defs.define("float", "variation_strength", 0.5, "variation: fraction of the forward process applied (0..1)")
    flag_defs.define("enum", "sampler", "ddpm", "diffusion sampler", enum_values=("ddpm", "ddim"))
    flag_defs.define("integer", "num_steps", None, "DDIM steps (default: all N)")
    flag_defs.define("float", "eta", 0.0, "DDIM stochasticity (1 = ancestral)")
    flag_defs.define("float", "temperature", 1.0, "MDN sampling temperature")
    flag_defs.define("enum", "interpolation_space", "full", "interpolation: slerp the whole z with the unused "
                     "dims refilled with noise (the released code's) or the active dims only",
                     enum_values=("full", "active"))
    flag_defs.define("integer", "shard_id", None, "this process's shard (default: the jax process index)")
    flag_defs.define("integer", "num_shards", None, "number of shards (default: the jax process count)")
    flag_defs.define("bool", "write_midi", True, "write a MIDI file per sample")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    FLAGS = flags.FLAGS
    if not FLAGS.output_dir or not FLAGS.vae_workdir:
        raise app.UsageError("--output_dir and --vae_workdir are required")
    import tfds_builders  # noqa: F401  (registers smdiff's datasets)

    builder = tfds.builder(FLAGS.latents, data_dir=FLAGS.data_dir)
    scaling = LatentScaling.load(builder.data_dir)
    test_latents, _ = load_latent_split(builder, "test")
    generator = build_generator(FLAGS.generator, FLAGS.prior_workdir, scaling, test_latents, FLAGS.sampler,
                                FLAGS.num_steps, FLAGS.eta, FLAGS.temperature,
                                interpolation_space=FLAGS.interpolation_space)
    decoder = load_vae_decoder(FLAGS.vae_workdir, scaling)
    metadata = {"generator": FLAGS.generator, "prior_workdir": FLAGS.prior_workdir,
                "vae_workdir": FLAGS.vae_workdir, "latents": FLAGS.latents, "sampler": FLAGS.sampler,
                "num_steps": FLAGS.num_steps, "eta": FLAGS.eta, "temperature": FLAGS.temperature,
                "interpolation_space": FLAGS.interpolation_space if FLAGS.generator == "interpolation" else None}
    for task in FLAGS.task:
        spec = SamplingSpec(task, FLAGS.num_samples, FLAGS.chunk_size, FLAGS.seed, FLAGS.num_missing,
                            FLAGS.num_known, FLAGS.variation_strength, FLAGS.write_midi)
        done = run(generator, decoder, spec, FLAGS.output_dir, test_latents.shape[1], test_latents,
                   FLAGS.shard_id, FLAGS.num_shards, metadata)
        print(f"{len(done)} completed {task} chunks in {FLAGS.output_dir}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
