"""Builds melody_latents (the `tfds build` CLI needs apache_beam, which smdiff does not install):

  python -m tfds_builders.melody_latents --config=embedded --data_dir=data/tfds [--vae_workdir=...]
"""
from absl import app, flags

from tfds_builders.melody_latents.melody_latents import MelodyLatents

flags.DEFINE_string("config", "embedded", "builder config: embedded or lmd_full")
flags.DEFINE_string("data_dir", "data/tfds", "TFDS data_dir holding the melody_windows dataset")
flags.DEFINE_string("vae_workdir", None, "melody VAE train workdir (default: the config's)")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    builder = MelodyLatents(config=flags.FLAGS.config, data_dir=flags.FLAGS.data_dir,
                            vae_workdir=flags.FLAGS.vae_workdir)
    builder.download_and_prepare()
    print(f"prepared {builder.info.full_name} in {builder.data_dir}: "
          f"{ {name: split.num_examples for name, split in builder.info.splits.items()} }")


if __name__ == "__main__":
    app.run(main)
