"""The sampling and evaluation jobs on real corpus latents: shard coverage, reproducibility across shard
counts, resume, MIDI output, tasks a generator cannot do, and Table 1 with its figures.

The latents are real folk-tune windows encoded by the small VAE of tests/real_latents.py; the generators
are the two that need no training (interpolation and the N(0, I) prior), decoded by the same VAE.
"""
import json
import os

import jax
import numpy as np
import pytest

from smdiff import evaluate
from smdiff.generators import base
from smdiff.evaluation import overlap
from smdiff.evaluation.notes import events_to_notes
from smdiff.generators.baselines import InterpolationGenerator, PriorGenerator
from smdiff.sampling import shards, store
import real_latents


@pytest.fixture(scope="module")
def sampling_setting():
    return real_latents.sampling_setting(num_tunes=12, num_train_tunes=10)


@pytest.fixture(scope="module")
def setting(sampling_setting):
    return sampling_setting[:3]


@pytest.fixture(scope="module")
def real_events(sampling_setting):
    """Events [m, k * 32] of the train and validation windows; the validation ones in the order of `held`."""
    return sampling_setting[3]


def test_chunks_are_identical_whichever_shard_makes_them(setting, tmp_path):
    scaling, held, decoder = setting
    spec = store.SamplingSpec("infilling", num_samples=10, chunk_size=4, write_midi=False)
    generator = PriorGenerator(scaling, held.shape[1])
    single = tmp_path / "one"
    store.run(generator, decoder, spec, str(single), held.shape[1], held, shard_id=0, num_shards=1)
    split = tmp_path / "three"
    for shard_id in range(3):
        store.run(generator, decoder, spec, str(split), held.shape[1], held, shard_id=shard_id, num_shards=3)
    one, three = store.load_samples(str(single), "infilling"), store.load_samples(str(split), "infilling")
    assert one["sample_index"].tolist() == list(range(10))
    for key in one:
        np.testing.assert_array_equal(one[key], three[key])
    # Infilling keeps the given latents (outer quarter on each side for k=4) exactly.
    mask = spec.known_mask(held.shape[1])
    np.testing.assert_array_equal(one["latents"][:, mask], held[one["known_index"]][:, mask])
    assert one["events"].shape == (10, held.shape[1] * 32)


def test_killed_run_resumes_and_writes_midi(setting, tmp_path, monkeypatch):
    scaling, held, decoder = setting
    spec = store.SamplingSpec("unconditional", num_samples=6, chunk_size=2)
    generator = InterpolationGenerator(scaling, held)
    calls = {"n": 0}

    def dying_decoder(rng, x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while making the second chunk
        return decoder(rng, x)

    with pytest.raises(KeyboardInterrupt):
        store.run(generator, dying_decoder, spec, str(tmp_path), held.shape[1])
    assert len(shards.completed_chunks(str(tmp_path), "unconditional")) == 1
    first = store.load_samples(str(tmp_path), "unconditional")

    done = store.run(generator, decoder, spec, str(tmp_path), held.shape[1])
    assert len(done) == 3
    resumed = store.load_samples(str(tmp_path), "unconditional")
    np.testing.assert_array_equal(resumed["events"][:2], first["events"])
    midi_files = sorted(os.listdir(os.path.join(done[1], "midi")))
    assert midi_files == ["000002.mid", "000003.mid"]


def test_unsupported_tasks_fail_clearly(setting, tmp_path):
    scaling, held, decoder = setting
    generator = PriorGenerator(scaling, held.shape[1])
    with pytest.raises(base.UnsupportedTaskError, match="variation"):
        store.run(generator, decoder, store.SamplingSpec("variation", 2, 2), str(tmp_path), held.shape[1], held)
    with pytest.raises(ValueError, match="known_pool"):
        store.run(generator, decoder, store.SamplingSpec("continuation", 2, 2), str(tmp_path), held.shape[1])
    assert jax.device_count() == 8  # the decoder above really ran sharded


def test_evaluation_writes_table_1_and_figures(setting, real_events, tmp_path):
    scaling, held, decoder = setting
    train_events, held_events = real_events
    generators = {"interpolation": InterpolationGenerator(scaling, held), "prior": PriorGenerator(scaling, held.shape[1])}
    for name, generator in generators.items():
        for task in ("unconditional", "infilling"):
            spec = store.SamplingSpec(task, num_samples=8, chunk_size=8, write_midi=False)
            store.run(generator, decoder, spec, str(tmp_path / "samples" / name), held.shape[1], held)
    out = tmp_path / "eval"
    results = evaluate.evaluate(str(tmp_path / "samples"), train_events, held_events, str(out), held, held_events,
                                num_real=20, wandb_project="smdiff-test")  # offline (conftest)
    assert set(results) == {"Train", "Test", "Interpolation", "N(0,I) prior"}

    def pooled(events):  # every adjacent-frame OA of every melody, and the frame pairs holding an empty frame
        oas, empty_pairs, pairs = {"pitch": [], "duration": []}, 0, 0
        for melody in events:
            notes = events_to_notes(melody)
            frames = overlap.frame_statistics(notes, num_steps=len(melody))
            for feature, values in zip(oas, overlap.sequence_overlaps(notes, num_steps=len(melody))):
                oas[feature].append(values)
            empty = frames["num_notes"] == 0
            empty_pairs += int((empty[:-1] | empty[1:]).sum())
            pairs += len(empty) - 1
        return {feature: np.concatenate(values) for feature, values in oas.items()}, empty_pairs, pairs

    ground_truth, _, _ = pooled(train_events)  # max_reference=None: every training window
    rows = {"interpolation": "Interpolation", "prior": "N(0,I) prior"}
    for generator, row in rows.items():
        for task in ("unconditional", "infilling"):
            generated, empty_pairs, pairs = pooled(
                store.load_samples(str(tmp_path / "samples" / generator), task)["events"])
            report = results[row][task]
            for feature in ("pitch", "duration"):
                expected = [max(0.0, 1 - abs(statistic(generated[feature]) - statistic(ground_truth[feature]))
                                / statistic(ground_truth[feature])) for statistic in (np.mean, np.var)]
                assert report["table"][feature] == pytest.approx(expected, abs=1e-9), (row, task, feature)
            frame_pairs = report["frame_pairs"]
            assert frame_pairs["pairs"] == pairs == 8 * 2  # 8 samples of 8 bars: 3 frames, 2 pairs each
            assert frame_pairs["one_empty"] + frame_pairs["both_empty"] == empty_pairs
    interpolation = results["Interpolation"]["unconditional"]
    assert interpolation["latent_fd"] > 0 and "relative_per_sequence" in interpolation
    markdown = (out / "table1.md").read_text()
    measured = markdown.split("**Paper")[0]  # the measured table, before the paper's for comparison
    cells = [f"{value:.2f} ({low:.2f}-{high:.2f})" for task in ("unconditional", "infilling")
             for feature in ("pitch", "duration")
             for value, (low, high) in zip(results["Interpolation"][task]["table"][feature],
                                           (results["Interpolation"][task]["interval_pooled"][feature][name]
                                            for name in ("C", "Var")))]
    assert "| Interpolation | " + " | ".join(cells) + " |" in measured
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["infilling_example_0.png", "infilling_example_1.png", "oa_duration.png", "oa_pitch.png"]
    (logged,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    consistency, _ = results["Interpolation"]["infilling"]["table"]["pitch"]
    assert logged["Interpolation/infilling/pitch_C"] == pytest.approx(consistency)
    assert (out / "tensorboard").is_dir() and list((out / "wandb").glob("offline-run-*"))


def test_evaluation_without_samples_is_an_error(real_events, tmp_path):
    train_events, held_events = real_events
    with pytest.raises(FileNotFoundError, match="no generator folder"):
        evaluate.evaluate(str(tmp_path), train_events, held_events, str(tmp_path / "eval"))


def test_reverse_process_scores_each_recorded_estimate_and_ends_at_the_sample(setting, real_events, tmp_path):
    from smdiff import reverse_process
    from smdiff.evaluation import latent_metrics, melody_sets
    from smdiff.generators.diffusion import DiffusionGenerator
    from smdiff.models.transformer_ddpm import TransformerDDPM, TransformerDDPMConfig
    from smdiff.tasks.latent_diffusion import LatentDiffusionTask

    scaling, held, decoder = setting
    train_events, _ = real_events
    config = TransformerDDPMConfig(data_dim=held.shape[-1], d_model=16, num_layers=1, num_heads=2, mlp_dim=32,
                                   res_width=32, film_hidden=16, noise_encoding_dim=16)
    task = LatentDiffusionTask(TransformerDDPM(config))
    params = task.init(jax.random.PRNGKey(0), {"latents": jax.numpy.asarray(held[:2])})
    generator = DiffusionGenerator(task, params, window_chunks=held.shape[1], sampler="ddim", num_sampling_steps=20)
    rng = jax.random.PRNGKey(4)
    chunks = str(tmp_path / "chunks")
    for shard_id in range(2):  # two chunks of 3, as two processes would make them
        reverse_process.make_chunks(generator, decoder, 6, 3, 5, rng, chunks, shard_id=shard_id, num_shards=2)
    results = reverse_process.metrics_along_reverse_process(chunks, 6, 3, melody_sets.set_overlaps(train_events), held)
    assert results["steps"] == sorted(results["steps"], reverse=True) and len(results["steps"]) == 4
    assert all(len(results[name]) == 4 and np.isfinite(results[name]).all() for name in reverse_process.CURVES)
    sample_rng = jax.random.split(rng)[0]  # the same runs, not recorded
    final = np.concatenate([generator.sample(jax.random.fold_in(sample_rng, chunk), 3) for chunk in range(2)])
    assert results["latent FD"][-1] == pytest.approx(latent_metrics.frechet_distance(held, final), rel=1e-4)
    path = reverse_process.write(results, str(tmp_path))
    assert os.path.getsize(path) > 0 and (tmp_path / "reverse_process.json").exists()


def test_evaluation_scores_continuations_and_variations_at_each_strength(setting, real_events, tmp_path):
    from smdiff.evaluation import melody_sets
    from smdiff.generators.diffusion import DiffusionGenerator
    from smdiff.models.transformer_ddpm import TransformerDDPM, TransformerDDPMConfig
    from smdiff.tasks.latent_diffusion import LatentDiffusionTask

    scaling, held, decoder = setting
    train_events, held_events = real_events
    samples = tmp_path / "samples"
    store.run(PriorGenerator(scaling, held.shape[1]), decoder,
              store.SamplingSpec("continuation", num_samples=8, chunk_size=8, write_midi=False),
              str(samples / "prior"), held.shape[1], held)
    config = TransformerDDPMConfig(data_dim=held.shape[-1], d_model=16, num_layers=1, num_heads=2, mlp_dim=32,
                                   res_width=32, film_hidden=16, noise_encoding_dim=16)
    task = LatentDiffusionTask(TransformerDDPM(config))
    params = task.init(jax.random.PRNGKey(0), {"latents": jax.numpy.asarray(held[:2])})
    diffusion = DiffusionGenerator(task, params, window_chunks=held.shape[1], sampler="ddim", num_sampling_steps=10)
    for strength in (0.1, 0.5):
        store.run(diffusion, decoder, store.SamplingSpec("variation", num_samples=6, chunk_size=6,
                                                         variation_strength=strength, write_midi=False),
                  str(samples / "diffusion" / f"variation_{strength}"), held.shape[1], held)
    out = tmp_path / "eval"
    results = evaluate.evaluate(str(samples), train_events, held_events, str(out), held, held_events, num_real=20)
    assert set(results["N(0,I) prior"]) == {"continuation"} and "continuation" in results["Test"]
    markdown = (out / "table1.md").read_text()
    continuation = markdown.split("**Measured continuation")[1].split("**")[1]
    assert "| N(0,I) prior | " in continuation and "| Diffusion |" not in continuation
    # Continuation keeps the first half of each given test window exactly.
    continued = store.load_samples(str(samples / "prior"), "continuation")
    np.testing.assert_array_equal(continued["latents"][:, :2], held[continued["known_index"]][:, :2])

    variations = json.loads((out / "variation.json").read_text())
    assert set(variations) == {"Diffusion", "Test (another window)"} and set(variations["Diffusion"]) == {"0.1", "0.5"}
    for strength in (0.1, 0.5):
        arrays = store.load_samples(str(samples / "diffusion" / f"variation_{strength}"), "variation")
        expected = melody_sets.source_similarity(arrays["events"], held_events[arrays["known_index"]])
        assert variations["Diffusion"][str(strength)]["source_similarity"] == json.loads(json.dumps(expected))
        rms = np.sqrt(np.mean((arrays["latents"].astype(np.float64) - held[arrays["known_index"]]) ** 2))
        assert variations["Diffusion"][str(strength)]["source_latent_rms"] == pytest.approx(rms)
        assert f"| Diffusion | {strength:g} | {rms:.3f} | " in markdown
    # More noise, further from the source in latent space (the denoiser is untrained, the noise is real).
    assert variations["Diffusion"]["0.1"]["source_latent_rms"] < variations["Diffusion"]["0.5"]["source_latent_rms"]
    assert "| Test (another window) | - | " in markdown
