"""Making thousands of latent sequences from any generator, decoded to melodies, into sharded, resumable
output folders, and reading them back (t5x `infer` style; `smdiff sample` is the job around it).

Modes: `unconditional`, `infilling` (default mask: the middle half of the k latents; the paper's middle 16
of 32), `continuation` (the first `num_known` latents given), `variation` (diffusion only: real windows
noised to `variation_strength` and denoised). Conditional modes take their known latents from a pool of
real latents, window i % (pool size) for sample i.

Output: `<output_dir>/<mode>-00003-of-00008/` chunks, each holding `samples.npz` (`latents` [n, k, d] in
the priors' space, `events` [n, k * 32], `sample_index` [n], `known_index` [n] for conditional modes) and
`midi/<sample_index>.mid`, plus a DONE.json marker written last (see smdiff/sampling/shards.py; the
output folder may be a `gs://` URL). Every chunk's randomness is derived from (seed, chunk index) alone
and its samples are drawn as one batch of `chunk_size` whatever the number of devices (the generators pad
and split it over this process's devices, and jax's random bits do not depend on the split), so a chunk
is the same bytes whichever process, and however many processes and devices, make it; a re-run skips
finished chunks and redoes a half-written one.

Across processes (`smdiff sample` under launch/): the shard is the jax process index and count, so each
process makes its own chunks on all of its local devices, and no two processes write the same chunk.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from absl import logging
from etils import epath
from tqdm import tqdm

from smdiff.codec.latent_codec import LatentDecoder
from smdiff.data import melody
from smdiff.generators import base
from smdiff.sampling import shards
from smdiff.training import sharding
from smdiff.training.paths import run_path

MODES = ("unconditional", "infilling", "continuation", "variation")


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """What to make: `mode` with its mask or strength, how many samples, how they are cut and seeded."""

    mode: str = "unconditional"
    num_samples: int = 1000
    chunk_size: int = 250
    seed: int = 0
    num_missing: int | None = None  # infilling: the middle `num_missing` latents (default k // 2)
    num_known: int | None = None  # continuation: the first `num_known` latents (default k // 2)
    variation_strength: float = 0.5
    write_midi: bool = True

    def known_mask(self, window_chunks: int) -> np.ndarray | None:
        """known_mask [k] of a conditional mode (True = given), None for unconditional and variation."""
        half = window_chunks // 2
        if self.mode == "infilling":
            return base.paper_infill_mask(window_chunks, self.num_missing or half)
        if self.mode == "continuation":
            return base.prefix_mask(window_chunks, half if self.num_known is None else self.num_known)
        return None


def generate(generator, spec: SamplingSpec, rng: jax.Array, known: np.ndarray | None, window_chunks: int,
             num_samples: int) -> np.ndarray:
    """One chunk of samples x [num_samples, k, d] for `spec.mode`."""
    if spec.mode == "unconditional":
        return np.asarray(generator.sample(rng, num_samples))
    if spec.mode == "variation":
        if not hasattr(generator, "variation"):
            raise base.UnsupportedTaskError(f"{type(generator).__name__} cannot make variations")
        return np.asarray(generator.variation(rng, known, spec.variation_strength))
    return np.asarray(generator.infill(rng, known, spec.known_mask(window_chunks)))


def run(generator, decoder: LatentDecoder, spec: SamplingSpec, output_dir: str, window_chunks: int,
        known_pool: np.ndarray | None = None, shard_id: int | None = None, num_shards: int | None = None,
        metadata: dict | None = None) -> list[epath.Path]:
    """Makes this shard's chunks of `spec` in `output_dir`; returns every completed chunk folder of the mode.

    Args:
      generator: a `smdiff.generators.base.Generator` (variation needs a diffusion generator).
      decoder: scaled latents -> events.
      window_chunks: k, latents per sequence.
      known_pool: [m, k, d] real latents that conditional modes take their given positions from.
      shard_id, num_shards: default the jax process index and count.
    """
    if spec.mode not in MODES:
        raise ValueError(f"unknown mode {spec.mode!r}; expected one of {MODES}")
    conditional = spec.mode != "unconditional"
    if conditional and (known_pool is None or not len(known_pool)):
        raise ValueError(f"mode {spec.mode!r} needs real latents to condition on (known_pool)")
    shard_id = jax.process_index() if shard_id is None else shard_id
    num_shards = jax.process_count() if num_shards is None else num_shards
    mine = shards.shard_chunks(shards.plan_chunks(spec.num_samples, spec.chunk_size), shard_id, num_shards)
    metadata = {**(metadata or {}), **dataclasses.asdict(spec), "rows_per_step": sharding.rows_per_step()}
    shards.check_same_run(output_dir, [spec.mode], metadata)
    todo = [chunk for chunk in mine if not shards.is_complete(output_dir, spec.mode, chunk)]
    logging.info("shard %d/%d: %d of its %d chunks to make in %s on %d local device(s)", shard_id, num_shards,
                 len(todo), len(mine), output_dir, jax.local_device_count())
    run_path(output_dir).mkdir(parents=True, exist_ok=True)
    made_by = shards.made_by()
    base_key = jax.random.PRNGKey(spec.seed)
    progress = tqdm(total=sum(chunk.size for chunk in todo), desc=f"{spec.mode} samples", unit=" samples")
    for chunk in todo:
        sample_key, decode_key = jax.random.split(jax.random.fold_in(base_key, chunk.index))
        sample_index = np.arange(chunk.start, chunk.start + chunk.size)
        known_index = sample_index % len(known_pool) if conditional else None
        known = known_pool[known_index] if conditional else None
        start = time.perf_counter()
        latents = generate(generator, spec, sample_key, known, window_chunks, chunk.size)
        events = decoder(decode_key, latents)
        seconds = time.perf_counter() - start

        def write_files(folder, latents=latents, events=events, sample_index=sample_index,
                        known_index=known_index):
            arrays = {"latents": latents, "events": events.astype(np.int16), "sample_index": sample_index}
            if known_index is not None:
                arrays["known_index"] = known_index
            shards.save_npz(folder / "samples.npz", arrays)
            if spec.write_midi:
                for index, melody_events in zip(sample_index, events):
                    ns = melody.events_to_note_sequence(melody_events)
                    melody.note_sequence_to_midi_file(ns, folder / "midi" / f"{index:06d}.mid")
            return {"seconds": round(seconds, 3), "samples_per_second": round(chunk.size / seconds, 2), **made_by}

        shards.write_chunk(output_dir, spec.mode, chunk, write_files, metadata)
        progress.update(chunk.size)
        progress.set_postfix(samples_per_s=f"{chunk.size / seconds:.1f}")
    progress.close()
    return shards.completed_chunks(output_dir, spec.mode)


def load_samples(output_dir: str, mode: str) -> dict[str, np.ndarray]:
    """The arrays of every completed chunk of `mode` in `output_dir`, concatenated in sample order, whatever
    number of processes made them (a warning names the run's chunks that are not complete)."""
    folders = shards.completed_chunks(output_dir, mode)
    if not folders:
        raise FileNotFoundError(f"no completed {mode!r} chunks in {output_dir}")
    num_chunks = shards.read_marker(folders[0])["num_chunks"]
    if len(folders) < num_chunks:
        logging.warning("%s: only %d of the %d %s chunks are complete; rerun `smdiff sample` with the same "
                        "flags to make the rest", output_dir, len(folders), num_chunks, mode)
    parts = [shards.load_npz(folder / "samples.npz") for folder in folders]
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    order = np.argsort(arrays["sample_index"])
    return {key: value[order] for key, value in arrays.items()}


def load_spec(output_dir: str, mode: str) -> SamplingSpec:
    """The SamplingSpec a finished run of `mode` in `output_dir` was made with (from its first marker)."""
    folders = shards.completed_chunks(output_dir, mode)
    if not folders:
        raise FileNotFoundError(f"no completed {mode!r} chunks in {output_dir}")
    marker = shards.read_marker(folders[0])
    if "mode" not in marker:  # written before the sampling task was renamed mode
        marker["mode"] = marker["task"]
    return SamplingSpec(**{field.name: marker[field.name] for field in dataclasses.fields(SamplingSpec)})
