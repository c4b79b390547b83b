"""The sampling job: thousands of latent sequences from any registered generator, decoded to melodies,
sharded and resumable (the making and the output layout: smdiff/sampling/store.py).

    smdiff sample --generator=diffusion --prior_workdir=workdirs/ddpm --vae_workdir=workdirs/vae \\
        --latents=melody_latents/embedded --data_dir=data/tfds --mode=unconditional --mode=infilling \\
        --output_dir=samples/ddpm

Generators (smdiff/generators/registry.py): `diffusion` (DDPM over all N diffusion steps, or DDIM with
--num_sampling_steps/--eta), `mdn` (at --temperature), `interpolation` (slerp between real latents of the test
split; --interpolation_space=full, the default, slerps the whole z with noise-refilled unused dims as the
released code, `active` the active dims only), `prior` (N(0, I) draws). Modes: `unconditional`, `infilling`, `continuation`, `variation`;
conditional modes take their known latents from the test split of the latent dataset. `--task` and
`--num_steps` are the old names of `--mode` and `--num_sampling_steps` (accepted until the next release).

Across processes and hosts (launch/local.sh --processes=N, launch/slurm.sh, launch/tpu_pod.sh): the job
joins jax.distributed like training (smdiff/training/topology.py; `topology.json` in --output_dir records
the processes and devices), the shard is the process index and count (or --shard_id/--num_shards), and
each process makes its own chunks on all of its local devices. The chunks are the same bytes for any
number of processes and devices; a killed run is resumed by running it again (smdiff/sampling/shards.py).

    launch/local.sh --processes=2 sample -- --generator=diffusion --prior_workdir=... --output_dir=...
"""
from __future__ import annotations

from typing import Sequence

import jax
from absl import app, flags

from smdiff import configurables, jobflags, joblog
from smdiff.codec.latent_codec import LatentDecoder, LatentScaling
from smdiff.data import tfds_io
from smdiff.generators.baselines import SPACES
from smdiff.generators.diffusion import SAMPLERS
from smdiff.generators.registry import GENERATORS, BuildContext, SamplerOptions
from smdiff.sampling import shards, store
from smdiff.training import topology, workdir
from smdiff.training.loop_helpers import enable_compilation_cache
from smdiff.training.paths import is_url

RENAMED_FLAGS = {"task": "mode", "num_steps": "num_sampling_steps"}

FLAGS = jobflags.namespace()
flags.DEFINE_enum("generator", "diffusion", list(GENERATORS), "which generator to sample", flag_values=FLAGS)
flags.DEFINE_string("prior_workdir", None, "train workdir of the diffusion or MDN prior", flag_values=FLAGS)
flags.DEFINE_enum("prior_weights", "ema", ["ema", "raw"], "the prior's EMA params (where its run kept them, "
                  "else its params) or its raw params; the chunk markers record which were used",
                  flag_values=FLAGS)
flags.DEFINE_string("vae_workdir", None, "train workdir of the melody VAE that decodes the latents",
                    flag_values=FLAGS)
flags.DEFINE_string("latents", "melody_latents/embedded", "the prepared latent dataset (name/config)",
                    flag_values=FLAGS)
flags.DEFINE_string("data_dir", "data/tfds", "TFDS data_dir holding the latent dataset", flag_values=FLAGS)
flags.DEFINE_multi_enum("mode", ["unconditional"], store.MODES, "what to generate; repeat the flag for several "
                        "modes in one run (each has its own chunks)", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "where the chunks go", flag_values=FLAGS)
flags.DEFINE_integer("num_samples", 1000, "samples in the whole run (all shards)", flag_values=FLAGS)
flags.DEFINE_integer("chunk_size", 250, "samples per chunk", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the run; chunk i uses fold_in(seed, i)", flag_values=FLAGS)
flags.DEFINE_integer("num_missing", None, "infilling: latents missing in the middle (default k // 2)",
                     flag_values=FLAGS)
flags.DEFINE_integer("num_known", None, "continuation: latents given at the start (default k // 2)",
                     flag_values=FLAGS)
flags.DEFINE_float("variation_strength", 0.5, "variation: fraction of the forward process applied (0..1)",
                   flag_values=FLAGS)
flags.DEFINE_enum("sampler", "ddpm", SAMPLERS, "diffusion sampler", flag_values=FLAGS)
flags.DEFINE_integer("num_sampling_steps", None, "DDIM steps (default: all N diffusion steps)", flag_values=FLAGS)
flags.DEFINE_float("eta", 0.0, "DDIM stochasticity (1 = ancestral)", flag_values=FLAGS)
flags.DEFINE_float("temperature", 1.0, "MDN sampling temperature", flag_values=FLAGS)
flags.DEFINE_enum("interpolation_space", "full", SPACES, "interpolation: slerp the whole z with the "
                  "unused dims refilled with noise (the released code's) or the active dims only", flag_values=FLAGS)
flags.DEFINE_integer("shard_id", None, "this process's shard (default: the jax process index)", flag_values=FLAGS)
flags.DEFINE_integer("num_shards", None, "number of shards (default: the jax process count)", flag_values=FLAGS)
flags.DEFINE_bool("write_midi", True, "write a MIDI file per sample", flag_values=FLAGS)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {list(argv[1:])}")
    if not FLAGS.output_dir or not FLAGS.vae_workdir:
        raise app.UsageError("--output_dir and --vae_workdir are required")
    registration = GENERATORS[FLAGS.generator]
    if registration.needs_prior and not FLAGS.prior_workdir:
        raise app.UsageError(f"--prior_workdir is required for the {FLAGS.generator} generator")
    topology.start(FLAGS.output_dir)  # jax.distributed from the launcher's environment; checks the device count
    joblog.setup(None if is_url(FLAGS.output_dir) else FLAGS.output_dir, "sample")
    enable_compilation_cache()
    scaling = LatentScaling.load(tfds_io.dataset_dir(FLAGS.latents, FLAGS.data_dir))
    test_latents = tfds_io.load_split(FLAGS.latents, "test", FLAGS.data_dir, ["latents"])["latents"].astype("float32")
    prior, prior_weights = None, None
    if registration.needs_prior:
        prior = configurables.load_trained(FLAGS.prior_workdir, ema=FLAGS.prior_weights == "ema")
        prior_weights = "ema" if FLAGS.prior_weights == "ema" and workdir.kept_ema(FLAGS.prior_workdir) else "raw"
    options = SamplerOptions(FLAGS.sampler, FLAGS.num_sampling_steps, FLAGS.eta, FLAGS.temperature,
                             FLAGS.interpolation_space)
    generator = registration.build(BuildContext(scaling, test_latents, prior, options))
    vae_task, vae_params = configurables.load_trained(FLAGS.vae_workdir)
    decoder = LatentDecoder(vae_task.model, vae_params, scaling)
    metadata = {"generator": FLAGS.generator, "prior_workdir": FLAGS.prior_workdir, "prior_weights": prior_weights,
                "vae_workdir": FLAGS.vae_workdir, "latents": FLAGS.latents, "sampler": FLAGS.sampler,
                "num_sampling_steps": FLAGS.num_sampling_steps, "eta": FLAGS.eta, "temperature": FLAGS.temperature,
                "interpolation_space": FLAGS.interpolation_space if FLAGS.generator == "interpolation" else None}
    for mode in FLAGS.mode:
        spec = store.SamplingSpec(mode, FLAGS.num_samples, FLAGS.chunk_size, FLAGS.seed, FLAGS.num_missing,
                                  FLAGS.num_known, FLAGS.variation_strength, FLAGS.write_midi)
        store.run(generator, decoder, spec, FLAGS.output_dir, test_latents.shape[1], test_latents,
                  FLAGS.shard_id, FLAGS.num_shards, metadata)
    topology.wait_for_all("smdiff sample: chunks made")
    if jax.process_index() == 0:
        for mode in FLAGS.mode:
            done = shards.completed_chunks(FLAGS.output_dir, mode)
            print(f"{len(done)} of {len(shards.plan_chunks(FLAGS.num_samples, FLAGS.chunk_size))} {mode} chunks "
                  f"complete in {FLAGS.output_dir}")
