"""The latent codec of the priors: VAE latents of melody windows, their active dims and [-1, 1] scaling,
encoding event windows into that space and decoding sequences of it back to melodies.

Mittal et al. keep the latent dims the VAE actually uses (mean posterior sigma over the train set below
0.98: 42 of 512 for `cat-mel_2bar_big`) and scale them with ONE global min and max over all train
elements: x = 2 (z - min) / (max - min) - 1. The train statistics are applied to every split (the
released code recomputed them per split, a bug). Decoding inverts the scaling and refills the unused
dims with N(0, 1) draws, as the prior would.

`WindowEncoder` turns event windows [n, k, 32] into (mu, sigma, z) [n, k, z_size] with the VAE encoder;
z = mu + sigma * eps with eps seeded by the chunk (its song, its index in the melody and its events), as
the released code encodes each song's chunks once: a chunk shared by up to k overlapping windows draws the
same noise in each (its z agrees up to float32 rounding of the batched encoder, which may differ by an ulp
with the row's position in the batch), and two passes over the data (statistics, then writing) draw the
same z. The mean sigma that picks the active dims is a mean over distinct chunks, not weighted by how many
windows hold a chunk.
`LatentDecoder` turns x [n, k, d] back into events [n, k * 32]. Both run jitted and sharded over every
device (`smdiff.training.sharding.ShardedApply`).
"""
import dataclasses
import hashlib
import json
import zlib
from typing import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from smdiff.data.chunks import all_rest
from smdiff.models.melody_vae import MelodyVAE
from smdiff.training import sharding
from smdiff.training.paths import run_path

DEFAULT_SIGMA_THRESHOLD = 0.98
SCALING_METADATA_KEY = "scaling"  # where melody_latents keeps the scaling in its metadata.json


@dataclasses.dataclass(frozen=True)
class LatentScaling:
    """Active dims and the train split's global min/max: everything the inverse transform needs."""

    active_dims: tuple[int, ...]  # indices into the VAE's z, ascending
    minimum: float
    maximum: float
    z_size: int

    def __post_init__(self):
        object.__setattr__(self, "active_dims", tuple(int(d) for d in self.active_dims))
        dims = np.asarray(self.active_dims)
        if not len(dims) or np.any(np.diff(dims) <= 0) or dims[0] < 0 or dims[-1] >= self.z_size:
            raise ValueError(
                f"active_dims must be ascending, distinct and within 0..{self.z_size - 1}: {self.active_dims}")
        if not self.maximum > self.minimum:
            raise ValueError(f"need maximum > minimum, got {self.minimum}, {self.maximum}")

    @property
    def dim(self) -> int:
        """d, the width of the priors' latents."""
        return len(self.active_dims)

    def to_model(self, z: jnp.ndarray) -> jnp.ndarray:
        """VAE latents z [..., z_size] -> the priors' x [..., d] in [-1, 1] (train range)."""
        if z.shape[-1] != self.z_size:
            raise ValueError(f"to_model expects [..., {self.z_size}] latents, got {z.shape}")
        active = z[..., np.asarray(self.active_dims)]
        return 2.0 * (active - self.minimum) / (self.maximum - self.minimum) - 1.0

    def to_vae(self, x: jnp.ndarray, rng: jax.Array) -> jnp.ndarray:
        """The priors' x [..., d] -> VAE latents z [..., z_size], unused dims drawn from N(0, 1)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"to_vae expects [..., {self.dim}] latents, got {x.shape}")
        active = (x + 1.0) / 2.0 * (self.maximum - self.minimum) + self.minimum
        z = jax.random.normal(rng, x.shape[:-1] + (self.z_size,), jnp.asarray(x).dtype)
        return z.at[..., np.asarray(self.active_dims)].set(active)

    def to_dict(self) -> dict:
        return {"active_dims": list(self.active_dims), "minimum": self.minimum, "maximum": self.maximum,
                "z_size": self.z_size}

    def save(self, path: str) -> None:
        """Writes the scaling as JSON to `path`."""
        run_path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str) -> "LatentScaling":
        """From a JSON file written by `save`, or from a prepared melody_latents dataset directory (its
        metadata.json holds the scaling). Either may be a URL (gs://...)."""
        path = run_path(path)
        if path.is_dir():
            metadata_path = path / "metadata.json"
            if not metadata_path.exists():
                raise FileNotFoundError(f"{path} has no metadata.json: not a prepared melody_latents dataset")
            metadata = json.loads(metadata_path.read_text())
            if SCALING_METADATA_KEY not in metadata:
                raise KeyError(f"{metadata_path} has no {SCALING_METADATA_KEY!r}: not a melody_latents dataset")
            return cls(**metadata[SCALING_METADATA_KEY])
        return cls(**json.loads(path.read_text()))


def select_active_dims(mean_sigma: np.ndarray, threshold: float = DEFAULT_SIGMA_THRESHOLD) -> np.ndarray:
    """Indices of the dims whose mean posterior sigma [z_size] is below `threshold` (the used ones)."""
    active = np.flatnonzero(np.asarray(mean_sigma) < threshold)
    if not active.size:
        raise ValueError(
            f"no latent dim has mean posterior sigma below {threshold} (smallest: {np.min(mean_sigma):.4f}); "
            "the VAE has collapsed to its prior or the threshold is too low"
        )
    return active


class TrainStatistics:
    """Streams over the train split's latents: per-dim sum of sigma over distinct chunks and per-dim
    min/max of z."""

    def __init__(self, z_size: int):
        self.z_size = z_size
        self.count = 0  # distinct chunks seen
        self.sigma_sum = np.zeros(z_size, np.float64)
        self.z_min = np.full(z_size, np.inf)
        self.z_max = np.full(z_size, -np.inf)
        self._seen: set[int] = set()

    def update(self, sigma: np.ndarray, z: np.ndarray, chunk_seeds: np.ndarray) -> None:
        """sigma, z: [..., z_size], one entry per chunk of a window; chunk_seeds: uint64 [...] naming each
        chunk (`chunk_seeds`). A chunk already seen in another window does not count again in the mean."""
        sigma = np.asarray(sigma, np.float64).reshape(-1, self.z_size)
        z = np.asarray(z).reshape(-1, self.z_size)
        names = np.asarray(chunk_seeds, np.uint64).reshape(-1)
        if len(names) != len(sigma):
            raise ValueError(f"need one chunk seed per chunk: {len(names)} seeds for {len(sigma)} chunks")
        new = np.zeros(len(names), bool)
        for i, name in enumerate(names.tolist()):
            new[i] = name not in self._seen
            self._seen.add(name)
        self.count += int(new.sum())
        self.sigma_sum += sigma[new].sum(0)
        self.z_min = np.minimum(self.z_min, z.min(0))
        self.z_max = np.maximum(self.z_max, z.max(0))

    @property
    def mean_sigma(self) -> np.ndarray:
        if not self.count:
            raise ValueError("no train latents were seen; cannot choose active dims")
        return self.sigma_sum / self.count

    def scaling(self, threshold: float = DEFAULT_SIGMA_THRESHOLD) -> LatentScaling:
        """Active dims by mean sigma < threshold; one global min/max over those dims of z."""
        dims = select_active_dims(self.mean_sigma, threshold)
        return LatentScaling(tuple(dims), float(self.z_min[dims].min()), float(self.z_max[dims].max()), self.z_size)


def window_seed(song_id: str, start_chunk: int, events: np.ndarray) -> int:
    """A uint32 seed that names one window (content included: a song may have several melodies)."""
    return zlib.crc32(np.asarray(events, np.int32).tobytes(), zlib.crc32(f"{song_id}#{start_chunk}".encode()))


def chunk_seeds(song_id: str, start_chunk: int, events: np.ndarray) -> np.ndarray:
    """uint64 [k] seeds naming each chunk of a window events [k, 32]: its song, its index in the melody and
    its events, so every window holding a chunk names it alike (64 bits: no collisions among LMD's ~10^6)."""
    events = np.asarray(events, np.int32)
    return np.asarray([int.from_bytes(hashlib.blake2b(f"{song_id}#{start_chunk + i}#".encode() + chunk.tobytes(),
                                                      digest_size=8).digest(), "little")
                       for i, chunk in enumerate(events)], np.uint64)


class WindowEncoder:
    """Encodes event windows [n, k, 32] with a MelodyVAE into (mu, sigma, z), each [n, k, z_size]."""

    def __init__(self, model: MelodyVAE, params, seed: int = 0):
        self.model = model
        self.z_size = model.config.z_size
        self._base_key = jax.random.PRNGKey(seed)
        self._encode = sharding.ShardedApply(self._encode_batch, num_replicated=1)
        self._params = self._encode.replicate(params)

    def _encode_batch(self, params, events: jax.Array, seed_words: jax.Array):
        n, k, steps = events.shape
        mu, sigma = self.model.apply({"params": params}, events.reshape(n * k, steps), method=self.model.encode)
        mu, sigma = mu.reshape(n, k, -1), sigma.reshape(n, k, -1)

        def chunk_noise(words):  # words: uint32 [2], the two halves of one chunk's seed
            key = jax.random.fold_in(jax.random.fold_in(self._base_key, words[0]), words[1])
            return jax.random.normal(key, (self.z_size,))

        noise = jax.vmap(jax.vmap(chunk_noise))(seed_words)  # [n, k, z_size]
        return mu, sigma, mu + sigma * noise

    def __call__(self, events: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """events int32 [n, k, 32], seeds uint64 [n, k] (see `chunk_seeds`) -> host (mu, sigma, z) [n, k, z]."""
        return jax.device_get(self.dispatch(events, seeds))

    def dispatch(self, events: np.ndarray, seeds: np.ndarray) -> tuple[jax.Array, jax.Array, jax.Array]:
        """As `__call__`, but returns at once with the device arrays the encoding will fill."""
        seeds = np.asarray(seeds, np.uint64)
        if seeds.shape != events.shape[:2]:
            raise ValueError(f"need one seed per chunk, [n, k] = {events.shape[:2]}; got {seeds.shape}")
        seed_words = np.stack([seeds >> np.uint64(32), seeds & np.uint64(0xFFFFFFFF)], -1).astype(np.uint32)
        return self._encode(self._params, jnp.asarray(events, jnp.int32), jnp.asarray(seed_words, jnp.uint32))

class LatentDecoder:
    """x [n, k, d] (the priors' space) -> events int32 [n, k * 32] (argmax decoding, the paper's ~T=0.001).

    Unused VAE dims are refilled with N(0, 1) draws from `rng` (REFERENCE.md).
    """

    def __init__(self, model: MelodyVAE, params, scaling: LatentScaling, temperature: float = 0.0):
        self.scaling = scaling

        def decode(params, rng, x):
            z_rng, sample_rng = jax.random.split(rng)
            z = scaling.to_vae(x, z_rng)  # [n, k, z_size]
            flat = z.reshape(-1, z.shape[-1])  # [n * k, z_size]: every 2-bar latent decodes on its own
            events = model.apply({"params": params}, flat, sample_rng, temperature, method=model.decode)
            return events.reshape(x.shape[0], -1)  # [n, k * 32]

        self._decode = sharding.ShardedApply(decode, num_replicated=2, rng_index=1)  # group mode: any device count
        self._params = self._decode.replicate(params)

    def __call__(self, rng: jax.Array, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._decode(self._params, rng, jnp.asarray(x, jnp.float32)))


@dataclasses.dataclass
class EncodedWindows:
    """A batch of encoded windows: latents [n, k, z_size] of each window, its song and position."""

    mu: np.ndarray
    sigma: np.ndarray
    z: np.ndarray
    song_id: list[str]
    start_chunk: np.ndarray  # [n]
    seed: np.ndarray  # [n] uint32, `window_seed` of each window (names it)
    chunk_seed: np.ndarray  # [n, k] uint64, `chunk_seeds` of each window (name its chunks, seed their z)


def encode_windows(encoder: WindowEncoder, windows: Iterable[dict], batch_size: int,
                   skipped: dict[str, int]) -> Iterator[EncodedWindows]:
    """Streams `windows` (dicts with `events` [k, 32], `song_id`, `start_chunk`) through `encoder` in
    batches of `batch_size`, each over every device. One batch is encoded while the next is read and
    prepared (seeds, stacking) on the host. A window holding an all-rest chunk has no latent: it is
    dropped and counted in `skipped["windows_with_all_rest_chunk"]`."""
    skipped.setdefault("windows_with_all_rest_chunk", 0)
    pending: list[dict] = []

    def dispatch():
        events = np.stack([w["events"] for w in pending])
        song_ids = [_text(w["song_id"]) for w in pending]
        starts = np.asarray([int(w["start_chunk"]) for w in pending], np.int32)
        seeds = np.asarray([window_seed(s, t, e) for s, t, e in zip(song_ids, starts, events)], np.uint32)
        per_chunk = np.stack([chunk_seeds(s, t, e) for s, t, e in zip(song_ids, starts, events)])
        pending.clear()
        return encoder.dispatch(events, per_chunk), (song_ids, starts, seeds, per_chunk)

    def fetch(in_flight) -> EncodedWindows:
        encoded, (song_ids, starts, seeds, per_chunk) = in_flight
        mu, sigma, z = jax.device_get(encoded)
        return EncodedWindows(mu, sigma, z, song_ids, starts, seeds, per_chunk)

    in_flight = None
    for window in windows:
        if all_rest(np.asarray(window["events"])).any():
            skipped["windows_with_all_rest_chunk"] += 1
            continue
        pending.append(window)
        if len(pending) == batch_size:
            previous, in_flight = in_flight, dispatch()
            if previous is not None:
                yield fetch(previous)
    if pending:
        previous, in_flight = in_flight, dispatch()
        if previous is not None:
            yield fetch(previous)
    if in_flight is not None:
        yield fetch(in_flight)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
