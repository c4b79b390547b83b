"""Real melody windows and a small melody VAE, shared by the latent-space and latent-diffusion tests.

The windows are music21 folk tunes (the embedded corpus) cut into k=4-chunk windows. The VAE is freshly
initialised with its sigma head biased so that dims 5-7 sit above the 0.98 threshold (as collapsed dims
of a trained VAE do) and dims 0-4 below; the melodies and their encodings are real.
"""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from smdiff.codec import latent_codec
from smdiff.data import corpus, songs
from smdiff.data.chunks import all_rest, song_windows
from smdiff.data.melody import MelodyRules
from smdiff.models.melody_vae import MelodyVAE, MelodyVAEConfig

K = 4  # chunks per window (the embedded corpus's k)
Z_SIZE = 8
COLLAPSED = (5, 6, 7)


def corpus_windows(num_tunes: int = 40, num_train_tunes: int = 30) -> dict[str, list[dict]]:
    """Windows (dicts like melody_windows examples) of the first tunes, split by tune: train, validation."""
    tally = collections.Counter()
    tunes = corpus.corpus_tunes(max_tunes=num_tunes)
    by_split = {"train": [], "validation": []}
    for index, song in enumerate(songs.iter_corpus_songs(tunes, MelodyRules(stream_bars=True), tally, workers=1)):
        split = "train" if index < num_train_tunes else "validation"
        for chunks in song.melodies:
            for start, window in song_windows(chunks, K, 1):
                by_split[split].append({"events": window, "song_id": song.song_id.encode(), "start_chunk": start})
    return by_split


def small_vae() -> tuple[MelodyVAE, dict]:
    model = MelodyVAE(MelodyVAEConfig(z_size=Z_SIZE, encoder_size=32, decoder_sizes=(32,)))
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32), jnp.int32), jax.random.PRNGKey(1))["params"]
    bias = np.full(Z_SIZE, -1.0, np.float32)  # softplus(-1) = 0.31
    bias[list(COLLAPSED)] = 2.0  # softplus(2) = 2.13
    params["encoder"]["sigma"]["bias"] = jnp.asarray(bias)
    return model, params


def scaled_corpus_latents(num_tunes: int = 60, num_train_tunes: int = 50) -> dict[str, np.ndarray]:
    """{'train', 'validation'}: float32 [n, K, 5] posterior means of real windows under `small_vae`, scaled
    with the train split's statistics (melody_latents' recipe; dims 5-7 are the collapsed ones)."""
    windows = corpus_windows(num_tunes, num_train_tunes)
    encoder = latent_codec.WindowEncoder(*small_vae())
    encoded = {}
    for split, split_windows in windows.items():
        batches = list(latent_codec.encode_windows(encoder, split_windows, batch_size=256, skipped={}))
        encoded[split] = {name: np.concatenate([getattr(b, name) for b in batches])
                          for name in ("mu", "sigma", "chunk_seed")}
    statistics = latent_codec.TrainStatistics(encoder.z_size)
    statistics.update(encoded["train"]["sigma"], encoded["train"]["mu"], encoded["train"]["chunk_seed"])
    scaling = statistics.scaling()
    return {split: np.asarray(scaling.to_model(jnp.asarray(e["mu"])), np.float32) for split, e in encoded.items()}


def sampling_setting(num_tunes: int = 12, num_train_tunes: int = 10):
    """(scaling, held, decoder, real_events) for sampling and evaluation tests: the `small_vae` scaling from
    the train windows' samples z, the scaled validation latents `held` [m, K, 5], a LatentDecoder, and
    (train events [n, K * 32], held events [m, K * 32] in `held`'s order; the encoder drops windows with
    an all-rest chunk)."""
    model, params = small_vae()
    windows = corpus_windows(num_tunes, num_train_tunes)
    encoder = latent_codec.WindowEncoder(model, params)
    statistics = latent_codec.TrainStatistics(model.config.z_size)
    skipped = {}
    for batch in latent_codec.encode_windows(encoder, windows["train"], 64, skipped):
        statistics.update(batch.sigma, batch.z, batch.chunk_seed)
    scaling = statistics.scaling()
    held = np.concatenate([np.asarray(scaling.to_model(batch.z)) for batch in
                           latent_codec.encode_windows(encoder, windows["validation"], 64, skipped)])
    train_events = np.stack([w["events"].reshape(-1) for w in windows["train"]])
    held_events = [w["events"] for w in windows["validation"] if not all_rest(w["events"]).any()]
    return (scaling, held, latent_codec.LatentDecoder(model, params, scaling),
            (train_events, np.stack(held_events).reshape(len(held_events), -1)))


def latents_dataset(x: np.ndarray) -> tf.data.Dataset:
    """A finite dataset of {'latents': [k, d]} examples, what the priors' Tasks train on."""
    return tf.data.Dataset.from_tensor_slices({"latents": x})
