"""`melody_latents`: melody windows encoded by a trained 2-bar melody VAE, in the priors' latent space.

Features: `latents` float32 [k, d], a sampled z = mu + sigma * eps of each chunk (what the released code
trained on), and `latents_mu` [k, d], the posterior means; both restricted to the active dims and scaled
to [-1, 1] with the TRAIN split's global min/max of z (applied to every split). `song_id`, `start_chunk`
as in `melody_windows`. The dataset's metadata.json holds `scaling` (active dims, min, max, z_size:
`smdiff.data.latent_codec.LatentScaling.load(<dataset dir>)`), the per-dim mean posterior sigma, and the tally
of skipped windows.

Configs (the VAE is a train workdir, smdiff's own or a converted Magenta checkpoint; override it with the
builder argument `vae_workdir`):
  embedded  melody_windows/embedded (k=4), VAE workdirs/melody_vae_embedded
  lmd_full  melody_windows/lmd_full (k=32, the paper's), VAE workdirs/cat-mel_2bar_big
            (`smdiff convert-magenta --magenta_checkpoint=cat-mel_2bar_big.ckpt --workdir=workdirs/cat-mel_2bar_big`)

Build (the melody_windows dataset of the config must be prepared in the same data_dir first):

  smdiff build tfds_builders/melody_latents --config=embedded --data_dir=data/tfds    # the config's VAE
  smdiff build melody_latents/embedded/vae_workdir=workdirs/<another VAE run> --imports=tfds_builders \\
      --data_dir=data/tfds

(TFDS passes the `/key=value` part of a registered dataset's name to the builder; `--imports` makes it
look the name up among the registered builders. A new config of your own is a JSON
`--config='{"name": ..., "windows": ..., "vae_workdir": ...}'` of `LatentsConfig`'s fields.)

The train split is encoded twice (statistics, then writing), batched, jitted and sharded over every
device; each chunk's z is seeded by the chunk (song, index, events), so both passes draw the same z and
every window holding a chunk gets the same noise for it, hence the same z up to float32 rounding (the
released code encodes each song's chunks once).
The mean sigma that selects the active dims is taken over distinct train chunks.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import tensorflow_datasets as tfds

from smdiff.codec import latent_codec
from smdiff.configurables import load_trained
from smdiff.data.array_record import WithArrayRecordCopy
from smdiff.models.melody_vae import MelodyVAE
from smdiff.training import workdir

HOMEPAGE = "https://github.com/magenta/symbolic-music-diffusion"


@dataclasses.dataclass(eq=False)
class LatentsConfig(tfds.core.BuilderConfig):
    """Which windows, which VAE, and how the latent space is chosen.

    Attributes:
      windows: the prepared melody_windows dataset (name/config) in the same data_dir.
      vae_workdir: a train workdir of the melody VAE (`smdiff.configurables.load_trained`), EMA params if kept.
      sigma_threshold: a dim is active when its mean posterior sigma over the train split is below this.
      batch_size: windows per encoder call (a multiple of the device count is best).
      seed: seed of the z draws.
    """

    windows: str = "melody_windows/embedded"
    vae_workdir: str = "workdirs/melody_vae_embedded"
    sigma_threshold: float = latent_codec.DEFAULT_SIGMA_THRESHOLD
    batch_size: int = 256
    seed: int = 0


EMBEDDED = LatentsConfig(
    name="embedded",
    description="melody_windows/embedded (k=4 chunks, music21 folk corpora) through smdiff's CPU melody VAE.",
)
LMD_FULL = LatentsConfig(
    name="lmd_full",
    description="melody_windows/lmd_full (k=32 chunks, 64 bars; the paper's) through cat-mel_2bar_big.",
    windows="melody_windows/lmd_full",
    vae_workdir="workdirs/cat-mel_2bar_big",
)


class MelodyLatents(WithArrayRecordCopy, tfds.core.GeneratorBasedBuilder):
    """Scaled VAE latents of melody windows, with the scaling in the metadata."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [EMBEDDED, LMD_FULL]
    DEFAULT_CONFIG_NAME = "embedded"

    def __init__(self, *, vae_workdir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._vae_workdir = vae_workdir or self.builder_config.vae_workdir

    def _info(self) -> tfds.core.DatasetInfo:
        # d (the number of active dims) is known only after the train pass: the last dim is left open.
        latent = tfds.features.Tensor(shape=(None, None), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB)
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "latents": latent,
                "latents_mu": latent,
                "song_id": tfds.features.Text(),
                "start_chunk": tfds.features.Scalar(dtype=np.int32),
            }),
            homepage=HOMEPAGE,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # everything comes from the windows dataset and the VAE workdir
        config: LatentsConfig = self.builder_config
        self._windows = tfds.builder(config.windows, data_dir=self.data_dir_root)
        if not self._windows.is_prepared():
            raise FileNotFoundError(
                f"{config.windows} is not prepared in {self.data_dir_root}; build it first (see its docstring)")
        self._encoder = latent_codec.WindowEncoder(*self._load_vae(), seed=config.seed)
        statistics = latent_codec.TrainStatistics(self._encoder.z_size)
        skipped: dict[str, int] = {}
        for batch in self._encoded("train", skipped):
            statistics.update(batch.sigma, batch.z, batch.chunk_seed)
        self._scaling = statistics.scaling(config.sigma_threshold)
        print(f"melody_latents/{config.name}: {self._scaling.dim} of {self._scaling.z_size} dims active "
              f"(mean sigma < {config.sigma_threshold}); train z range [{self._scaling.minimum:.4f}, "
              f"{self._scaling.maximum:.4f}] over {statistics.count} distinct chunks")
        self.info.metadata[latent_codec.SCALING_METADATA_KEY] = self._scaling.to_dict()
        self.info.metadata["mean_sigma"] = [round(float(s), 6) for s in statistics.mean_sigma]
        self.info.metadata["vae_workdir"] = self._vae_workdir
        self.info.metadata["vae_step"] = self._vae_step
        return {split: self._generate_examples(split) for split in self._windows.info.splits}

    def _load_vae(self) -> tuple[MelodyVAE, object]:
        task, params = load_trained(self._vae_workdir, ema=True)
        self._vae_step = workdir.latest_step(self._vae_workdir)  # the step load_trained restored, for provenance
        if not isinstance(task.model, MelodyVAE):
            raise TypeError(f"{self._vae_workdir} holds a {type(task.model).__name__}, not a MelodyVAE")
        return task.model, params

    def _encoded(self, split: str, skipped: dict[str, int], progress_bar: bool = True):
        """The split's encoded windows in batches, with a progress bar unless TFDS shows its own (when
        writing the examples)."""
        windows = tfds.as_numpy(self._windows.as_dataset(split=split, shuffle_files=False))
        total = self._windows.info.splits[split].num_examples
        progress = tfds.core.utils.tqdm(total=total, desc=f"encoding {split}", unit=" windows", file=sys.stdout,
                                        disable=not progress_bar)
        for batch in latent_codec.encode_windows(self._encoder, windows, self.builder_config.batch_size, skipped):
            progress.update(len(batch.song_id))
            yield batch
        progress.close()

    def _generate_examples(self, split: str):
        skipped: dict[str, int] = {"duplicate_windows": 0}
        seen: set[str] = set()
        kept = 0
        for batch in self._encoded(split, skipped, progress_bar=False):
            scaled_z = np.asarray(self._scaling.to_model(batch.z), np.float32)  # [n, k, d]
            scaled_mu = np.asarray(self._scaling.to_model(batch.mu), np.float32)
            for i, (song_id, start, seed) in enumerate(zip(batch.song_id, batch.start_chunk, batch.seed)):
                # Two identical melodies of one song (e.g. doubled tracks) give the same window twice.
                key = f"{song_id}#{start}#{seed:08x}"
                if key in seen:
                    skipped["duplicate_windows"] += 1
                    continue
                seen.add(key)
                kept += 1
                yield key, {"latents": scaled_z[i], "latents_mu": scaled_mu[i], "song_id": song_id,
                            "start_chunk": int(start)}
        self.info.metadata.setdefault("tally", {})[split] = {"examples": kept, **skipped}
        print(f"melody_latents/{self.builder_config.name} {split}: {kept} windows; skipped {skipped}")
        if split == "train" and not kept:
            raise ValueError(f"melody_latents: the train split is empty; skipped {skipped}")
