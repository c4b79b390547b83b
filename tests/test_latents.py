"""The latent space of the priors, on real latents: music21 folk tunes encoded by a small melody VAE
(see tests/real_latents.py)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smdiff.codec import latent_codec
from real_latents import K, corpus_windows, small_vae


@pytest.fixture(scope="module")
def windows_by_split():
    by_split = corpus_windows()
    assert len(by_split["train"]) > 100 and len(by_split["validation"]) > 20
    return by_split


@pytest.fixture(scope="module")
def vae():
    return small_vae()


@pytest.fixture(scope="module")
def encoded(windows_by_split, vae):
    encoder = latent_codec.WindowEncoder(*vae, seed=0)
    out = {}
    for split, windows in windows_by_split.items():
        skipped = {}
        batches = list(latent_codec.encode_windows(encoder, windows, batch_size=64, skipped=skipped))
        out[split] = {name: np.concatenate([getattr(b, name) for b in batches])
                      for name in ("mu", "sigma", "z", "chunk_seed")}
        assert skipped == {"windows_with_all_rest_chunk": 0}
    return encoder, out


def direct_encode(vae, events):
    model, params = vae
    mu, sigma = model.apply({"params": params}, jnp.asarray(events.reshape(-1, 32)), method=model.encode)
    return np.asarray(mu).reshape(len(events), K, -1), np.asarray(sigma).reshape(len(events), K, -1)


def train_scaling(encoded_train) -> latent_codec.LatentScaling:
    statistics = latent_codec.TrainStatistics(8)
    statistics.update(encoded_train["sigma"], encoded_train["z"], encoded_train["chunk_seed"])
    return statistics.scaling(0.98)


def test_sharded_encoding_matches_the_model_and_z_is_seeded_by_the_chunk(windows_by_split, vae):
    assert len(jax.devices()) == 8
    encoder = latent_codec.WindowEncoder(*vae, seed=0)
    windows = windows_by_split["train"][:13]  # not a multiple of 8: padded, then trimmed
    events = np.stack([w["events"] for w in windows])
    seeds = np.stack([latent_codec.chunk_seeds(w["song_id"].decode(), w["start_chunk"], w["events"]) for w in windows])
    assert seeds.shape == (13, K) and seeds.dtype == np.uint64
    mu, sigma, z = encoder(events, seeds)
    expected_mu, expected_sigma = direct_encode(vae, events)
    assert mu.shape == (13, K, 8)
    np.testing.assert_allclose(mu, expected_mu, atol=1e-5)
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-5)
    # The same chunk draws the same z in every pass; different chunks draw different noise.
    _, _, z_again = encoder(events[::-1], seeds[::-1])
    np.testing.assert_array_equal(z_again[::-1], z)
    noise = (z - mu) / sigma
    assert not np.allclose(noise[0, 0], noise[0, 1])
    assert abs(noise.mean()) < 0.2 and abs(noise.std() - 1) < 0.2
    with pytest.raises(ValueError, match="one seed per chunk"):
        encoder(events, seeds[:, 0])


def test_streamed_encoding_is_bit_identical_to_one_batch_at_a_time(windows_by_split, vae):
    """encode_windows encodes one batch on the devices while it prepares the next on the host: its
    latents and names must be exactly those of encoding each batch and waiting for it (the build before
    the overlap), in order, with a short last batch."""
    encoder = latent_codec.WindowEncoder(*vae, seed=0)
    windows, size = windows_by_split["train"], 48
    streamed = list(latent_codec.encode_windows(encoder, windows, batch_size=size, skipped={}))
    assert len(windows) % size and len(streamed) == -(-len(windows) // size)  # none dropped (see `encoded`)
    for index, batch in enumerate(streamed):
        part = windows[index * size:(index + 1) * size]
        events = np.stack([w["events"] for w in part])
        seeds = np.stack([latent_codec.chunk_seeds(w["song_id"].decode(), w["start_chunk"], w["events"]) for w in part])
        for streamed_array, waited_array in zip((batch.mu, batch.sigma, batch.z), encoder(events, seeds)):
            np.testing.assert_array_equal(streamed_array, waited_array)
        np.testing.assert_array_equal(batch.chunk_seed, seeds)
        assert batch.song_id == [w["song_id"].decode() for w in part]


def test_a_chunk_has_one_z_in_every_window_that_holds_it(windows_by_split, encoded):
    """The released code encodes each song's chunks once: with stride 1, chunk c of a melody sits in up to k
    windows and must have the same z in all of them (up to float32 rounding: XLA's batched matmul may round
    a row differently at another position in the batch, by an ulp on some CPUs)."""
    _, out = encoded
    by_chunk: dict[tuple, list[np.ndarray]] = {}
    for window, z in zip(windows_by_split["train"], out["train"]["z"]):  # none dropped (see `encoded`)
        for j, chunk in enumerate(window["events"]):
            by_chunk.setdefault((window["song_id"], window["start_chunk"] + j, chunk.tobytes()), []).append(z[j])
    shared = [zs for zs in by_chunk.values() if len(zs) > 1]
    assert len(shared) > 100  # overlapping windows share most chunks
    for zs in shared:
        np.testing.assert_allclose(np.stack(zs), np.broadcast_to(zs[0], (len(zs), 8)), rtol=1e-5, atol=1e-6)
    # Distinct chunks still draw distinct noise.
    firsts = np.stack([zs[0] for zs in by_chunk.values()])
    assert len(np.unique(firsts[:, 0])) == len(firsts)


def test_active_dims_are_those_with_mean_sigma_over_distinct_train_chunks_below_threshold(windows_by_split, vae):
    # The small VAE's sigma head scaled up so that sigma varies from chunk to chunk, as a trained VAE's does.
    model, params = vae
    params = {**params, "encoder": {**params["encoder"], "sigma": {
        **params["encoder"]["sigma"], "kernel": params["encoder"]["sigma"]["kernel"] * 1000.0}}}
    train = windows_by_split["train"]
    batches = list(latent_codec.encode_windows(latent_codec.WindowEncoder(model, params), train, 64, {}))
    # Each distinct chunk of the train melodies once (song, index in its melody, events), as the released
    # code averages sigma over the chunks it encoded once per song.
    distinct = {}
    for window in train:
        for j, chunk in enumerate(window["events"]):
            distinct[(window["song_id"], window["start_chunk"] + j, chunk.tobytes())] = chunk
    _, sigma = direct_encode((model, params), np.stack(list(distinct.values()))[:, None].repeat(K, 1))
    per_chunk = sigma[:, 0].mean(0)  # [8]
    _, window_sigma = direct_encode((model, params), np.stack([w["events"] for w in train]))
    per_window = window_sigma.reshape(-1, 8).mean(0)  # a chunk counted once per window holding it
    # Melodies are short, so their first and last chunks sit in fewer windows: the two means differ.
    assert np.abs(per_chunk - per_window).max() > 5e-3

    statistics = latent_codec.TrainStatistics(8)
    for batch in batches:  # streamed: a chunk seen in an earlier batch does not count again
        statistics.update(batch.sigma, batch.z, batch.chunk_seed)
    assert statistics.count == len(distinct) < K * len(train)
    np.testing.assert_allclose(statistics.mean_sigma, per_chunk, rtol=1e-5)
    scaling = statistics.scaling(0.98)
    assert scaling.active_dims == (0, 1, 2, 3, 4)
    assert scaling.active_dims == tuple(np.flatnonzero(per_chunk < 0.98))
    with pytest.raises(ValueError, match="one chunk seed per chunk"):
        statistics.update(batches[0].sigma, batches[0].z, batches[0].chunk_seed[:, 0])
    # One global min and max over the active dims of the train z.
    active = np.concatenate([batch.z for batch in batches])[..., :5]
    assert (scaling.minimum, scaling.maximum) == (float(active.min()), float(active.max()))
    with pytest.raises(ValueError, match="no latent dim"):
        latent_codec.select_active_dims(statistics.mean_sigma, threshold=0.01)


def test_train_statistics_scale_every_split(encoded):
    _, out = encoded
    scaling = train_scaling(out["train"])
    train_x = np.asarray(scaling.to_model(jnp.asarray(out["train"]["z"])))
    assert train_x.shape[-1] == 5
    np.testing.assert_allclose([train_x.min(), train_x.max()], [-1.0, 1.0], atol=1e-6)
    validation_z = out["validation"]["z"][..., :5]
    validation_x = np.asarray(scaling.to_model(jnp.asarray(out["validation"]["z"])))
    expected = 2 * (validation_z - scaling.minimum) / (scaling.maximum - scaling.minimum) - 1
    np.testing.assert_allclose(validation_x, expected, rtol=1e-5, atol=1e-6)
    # Per-split scaling (the released code's bug) would have stretched validation to exactly [-1, 1].
    assert not np.allclose([validation_x.min(), validation_x.max()], [-1.0, 1.0], atol=1e-3)


def test_scaling_round_trip_refills_unused_dims_with_standard_normal(encoded):
    _, out = encoded
    scaling = train_scaling(out["train"])
    z = jnp.asarray(out["train"]["z"])  # [n, k, 8]
    back = np.asarray(scaling.to_vae(scaling.to_model(z), jax.random.PRNGKey(3)))
    np.testing.assert_allclose(back[..., :5], out["train"]["z"][..., :5], atol=1e-5)
    refilled = back[..., 5:]
    assert not np.allclose(refilled, out["train"]["z"][..., 5:])
    assert abs(refilled.mean()) < 0.1 and abs(refilled.std() - 1.0) < 0.1
    with pytest.raises(ValueError, match="to_vae expects"):
        scaling.to_vae(jnp.zeros((2, 8)), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="to_model expects"):
        scaling.to_model(jnp.zeros((2, 5)))


def test_windows_with_an_all_rest_chunk_are_dropped_and_counted(windows_by_split, encoded):
    encoder, _ = encoded
    real = windows_by_split["train"][:3]
    with_rest = dict(real[1], events=real[1]["events"].copy())
    with_rest["events"][2] = 0  # chunk 2: NO_EVENT throughout, no onset
    skipped = {}
    batches = list(latent_codec.encode_windows(encoder, [real[0], with_rest, real[2]], batch_size=2, skipped=skipped))
    assert skipped == {"windows_with_all_rest_chunk": 1}
    assert [b.start_chunk.tolist() for b in batches] == [[real[0]["start_chunk"], real[2]["start_chunk"]]]


def test_scaling_saves_and_loads_from_a_file_or_a_dataset_dir(tmp_path, encoded):
    _, out = encoded
    scaling = train_scaling(out["train"])
    scaling.save(str(tmp_path / "scaling.json"))
    assert latent_codec.LatentScaling.load(str(tmp_path / "scaling.json")) == scaling
    dataset_dir = tmp_path / "melody_latents" / "embedded" / "1.0.0"
    dataset_dir.mkdir(parents=True)
    (dataset_dir / "metadata.json").write_text(json.dumps({"scaling": scaling.to_dict(), "tally": {}}))
    assert latent_codec.LatentScaling.load(str(dataset_dir)) == scaling
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        latent_codec.LatentScaling.load(str(tmp_path))
    with pytest.raises(ValueError, match="maximum > minimum"):
        latent_codec.LatentScaling((0, 1), 1.0, 1.0, 8)
    with pytest.raises(ValueError, match="ascending"):
        latent_codec.LatentScaling((3, 9), -1.0, 1.0, 8)


@pytest.mark.slow
def test_melody_latents_builder_end_to_end(tmp_path):
    """melody_windows of 30 real tunes -> the tiny gin VAE trained 2 steps (a real train workdir) ->
    melody_latents: scaling in the metadata, train range [-1, 1], mu stored exactly as the VAE encodes."""
    import dataclasses

    import gin
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from smdiff import configurables
    from smdiff import train as train_job
    from smdiff.training import workdir as workdir_files
    from tfds_builders import melody_common
    from tfds_builders.melody_latents import melody_latents
    from tfds_builders.melody_windows import MelodyWindows

    data_dir = str(tmp_path / "tfds")
    windows_config = dataclasses.replace(melody_common.EMBEDDED, name="embedded_slice", max_tunes=30, workers=1)
    windows = MelodyWindows(config=windows_config, data_dir=data_dir)
    windows.download_and_prepare()
    train_events = np.concatenate([w["events"] for w in tfds.as_numpy(windows.as_dataset(split="train"))])

    workdir = tmp_path / "vae"
    gin.clear_config()
    gin.add_config_file_search_path(train_job.REPO_ROOT)
    gin.parse_config_files_and_bindings(["gin/models/melody_vae_tiny.gin", "gin/runs/cpu_smoke.gin"],
                                        ["train.num_train_steps = 2", "train.checkpoint_every_steps = 2"])
    workdir.mkdir()
    (workdir / workdir_files.CONFIG_FILE).write_text(gin.config_str())
    configurables.train(workdir=str(workdir), train_data=tf.data.Dataset.from_tensor_slices({"events": train_events}))
    gin.clear_config()

    config = dataclasses.replace(melody_latents.EMBEDDED, name="embedded_slice",
                                 windows="melody_windows/embedded_slice", batch_size=64)
    builder = melody_latents.MelodyLatents(config=config, data_dir=data_dir, vae_workdir=str(workdir))
    builder.download_and_prepare()
    scaling = latent_codec.LatentScaling.load(builder.data_dir)
    mean_sigma = np.asarray(builder.info.metadata["mean_sigma"])
    assert scaling.z_size == 8 and scaling.active_dims == tuple(np.flatnonzero(mean_sigma < 0.98))
    assert builder.info.metadata["vae_step"] == 2

    def read(split):
        return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))

    train = read("train")
    assert len(train) == windows.info.splits["train"].num_examples - builder.info.metadata["tally"]["train"][
        "duplicate_windows"]
    z_train = np.stack([example["latents"] for example in train])  # [n, 4, d]
    assert z_train.shape[1:] == (K, scaling.dim)
    np.testing.assert_allclose([z_train.min(), z_train.max()], [-1.0, 1.0], atol=1e-5)

    vae_task, params = configurables.load_trained(str(workdir))
    vae_model = vae_task.model
    stored = {(e["song_id"], e["start_chunk"]): e["latents_mu"] for e in read("validation")}
    checked = 0
    for window in tfds.as_numpy(windows.as_dataset(split="validation")):
        mu, _ = vae_model.apply({"params": params}, jnp.asarray(window["events"]), method=vae_model.encode)
        np.testing.assert_allclose(stored[(window["song_id"], window["start_chunk"])], scaling.to_model(mu), atol=1e-4)
        checked += 1
    assert checked == len(stored) > 0
