"""One process of a multi-process sampling run, for the scale-out tests (tests/test_sampling_processes.py):

    python tests/sampling_processes.py sample|pianoroll OUTPUT_DIR
    python tests/sampling_processes.py sample OUTPUT_DIR NUM_SAMPLES CHUNK_SIZE DDIM_STEPS  (benchmarks)

started N times with the environment `launch/local.sh --processes=N` gives each process
(distributed_runs.process_env). Each does what the job's `main` does, in the same order and with the same
library calls, on real music and small models built here instead of read from workdirs and TFDS datasets
(building those would take minutes per test):

- `sample` (smdiff/sample.py): `topology.start`, `store.run` of two modes (unconditional, infilling) with
  a DDIM diffusion generator decoded by the small VAE of tests/real_latents.py, on real folk-tune latents
  (the infilling pool), then `topology.wait_for_all`.
- `pianoroll` (smdiff/pianoroll_eval.py): `topology.start`, `pianoroll_eval.generate` on 4-bar segments of
  real Bach chorales with a tiny binomial U-Net, `topology.wait_for_all`, then process 0 loads every
  process's chunks and scores them (`evaluate`).

The models are freshly initialised from fixed seeds (the same in every process): these runs test who makes
which chunk and that the bytes do not depend on the layout, not what a trained model makes.
"""
import collections
import os
import sys

# Row groups of 2 (smdiff/training/sharding.py), so that a chunk of 8 rows spreads over up to 4 devices.
os.environ.setdefault("SMDIFF_ROWS_PER_STEP", "2")

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smdiff.training import topology  # noqa: E402

NUM_SAMPLES, SAMPLE_CHUNK = 16, 8  # 2 chunks per mode, each 4 row groups (one per device of 4)
NUM_SEGMENTS, SEGMENT_CHUNK = 8, 8  # 5 tasks x 1 chunk
CHORALES = ("bach/bwv269", "bach/bwv347", "bach/bwv153.1")


def sample(output_dir: str, num_samples: int = NUM_SAMPLES, chunk_size: int = SAMPLE_CHUNK,
           ddim_steps: int = 4) -> None:
    from real_latents import corpus_windows, small_vae

    from smdiff.codec import latent_codec
    from smdiff.generators.diffusion import DiffusionGenerator
    from smdiff.models.transformer_ddpm import TransformerDDPM, TransformerDDPMConfig
    from smdiff.sampling import store
    from smdiff.tasks.latent_diffusion import LatentDiffusionTask

    model, params = small_vae()
    windows = corpus_windows(num_tunes=8, num_train_tunes=6)
    encoder = latent_codec.WindowEncoder(model, params)
    statistics = latent_codec.TrainStatistics(model.config.z_size)
    for batch in latent_codec.encode_windows(encoder, windows["train"], 64, {}):
        statistics.update(batch.sigma, batch.z, batch.chunk_seed)
    scaling = statistics.scaling()
    held = np.concatenate([np.asarray(scaling.to_model(batch.z)) for batch in
                           latent_codec.encode_windows(encoder, windows["validation"], 64, {})])  # [m, 4, 5]
    task = LatentDiffusionTask(TransformerDDPM(TransformerDDPMConfig(
        data_dim=held.shape[-1], d_model=32, num_layers=2, num_heads=2, mlp_dim=64, res_width=64, film_hidden=32,
        noise_encoding_dim=32)))
    prior = task.init(jax.random.PRNGKey(7), {"latents": jnp.asarray(held[:2])})
    generator = DiffusionGenerator(task, prior, held.shape[1], sampler="ddim", num_sampling_steps=ddim_steps)
    decoder = latent_codec.LatentDecoder(model, params, scaling)
    for mode in ("unconditional", "infilling"):
        spec = store.SamplingSpec(mode, num_samples, chunk_size, seed=3)
        store.run(generator, decoder, spec, output_dir, held.shape[1], held)
    topology.wait_for_all("test sample: chunks made")


def pianoroll(output_dir: str) -> None:
    from smdiff import pianoroll_eval
    from smdiff.data import chorales
    from smdiff.data.pianoroll_segments import SegmentConfig, choose_pitch_range, piece_segments
    from smdiff.generators.pianoroll import PianorollGenerator
    from smdiff.models.unet import UNet, UNetConfig
    from smdiff.tasks.binomial import BinomialTask

    config = SegmentConfig(segment_quarters=16, stride_quarters=8)
    pieces = [chorales.parse_chorale(name, config.steps_per_quarter) for name in CHORALES]
    pitch_range = choose_pitch_range(pieces, config)
    examples = [example for piece in pieces
                for _, example in piece_segments(piece, "test", pitch_range, config, collections.Counter())]
    segments = {field: np.stack([example[field] for example in examples])
                for field in ("roll", "tracks", "key_tonic", "key_mode", "piece")}
    test = {field: values[:NUM_SEGMENTS] for field, values in segments.items()}
    task = BinomialTask(model=UNet(UNetConfig(base_width=8, width_multipliers=(1, 2), blocks_per_level=1,
                                              attention_heads=2, attention_head_width=8)),
                        density=float(segments["roll"].mean()), loss_type="bce")
    params = task.init(jax.random.PRNGKey(5), {"roll": jnp.asarray(test["roll"][:1], jnp.float32)})
    generator = PianorollGenerator(task, params, test["roll"].shape[1:], num_sampling_steps=4)
    generated_dir = os.path.join(output_dir, pianoroll_eval.GENERATED)
    pianoroll_eval.generate(generator, test, generated_dir, SEGMENT_CHUNK, seed=2)
    topology.wait_for_all("test pianoroll: chunks made")
    if jax.process_index() == 0:
        generated = pianoroll_eval.load_generated(generated_dir, NUM_SEGMENTS, SEGMENT_CHUNK)
        results, _ = pianoroll_eval.evaluate(generated, test, segments["roll"].astype(np.float32),
                                             task.density, pitch_range, config.steps_per_quarter, seed=2,
                                             output_dir=output_dir, num_midi=1, num_resamples=20)
        with open(os.path.join(output_dir, "metrics.json"), "w") as f:
            f.write(repr(results))


if __name__ == "__main__":
    job, output_dir, *sizes = sys.argv[1:]
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)  # the chunks' "completed chunk" records, counted by the tests
    topology.start(output_dir)
    {"sample": sample, "pianoroll": pianoroll}[job](output_dir, *map(int, sizes))
