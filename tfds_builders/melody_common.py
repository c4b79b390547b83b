"""What the melody builders (`melody_chunks`, `melody_windows`) share: sources, configs, splits, tally.

Sources (builder configs):
  embedded  the music21 folk corpora (Essen, O'Neill's 1850, Aird's Airs; 11,703 tunes), the default.
            Most tunes are in 2/4, 3/4, 6/8 ... and short (median 6 chunks = 12 bars): Magenta's rules
            (16-step bars only) keep 3,614 tunes (24,311 chunks, 13,305 windows of k=4), so this config
            reads every tune as a continuous stream of 16-step bars (time signatures ignored; a pickup
            is shifted so the first full bar starts on a bar line): 11,703 tunes, 72,131 chunks. Windows
            of k=4 chunks (8 bars, the shortest k that infilling the middle half and 4-bar/2-bar-hop
            frames accept), stride 1: 37,762 windows (k=8 would give 11,998; k=16 2,670; k=32 368).
            Split 90/5/5 by tune. `benchmarks/RESULTS.md` has the table of these counts.
  lmd_full  Lakh MIDI LMD-full as the paper's released pipeline reads it: Magenta's rules (16-step bars
            only, songs over an hour skipped) with a melody from every non-drum instrument, windows of
            k=32 chunks (64 bars), stride 1, split 99/0.5/0.5 by file. Reads `lmd_full.tar.gz` or its
            extracted `lmd_full/` folder from the manual dir.
  lmd_full_programs_0_31  the same with MusicVAE's default program filter (programs 0-31: piano,
            chromatic percussion, organ, guitar), as Magenta's own melody data converter.
  midi_dir  any folder of MIDI files (recursively) from the manual dir or `MelodyConfig.midi_dir`,
            Magenta's rules, k=32, stride 1, split 90/5/5 by file.

Every skipped song, piece, chunk and window is counted by reason; the tally is printed after each split
and saved in the dataset's metadata (`info.metadata["tally"][split]`). A split that comes out empty is
an error with the tally, never an empty dataset.
"""
from __future__ import annotations

import abc
import collections
import dataclasses
import json
import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from smdiff.data import corpus, midi_files, songs, splits
from smdiff.data.array_record import WithArrayRecordCopy
from smdiff.data.melody import MEL_PROGRAMS, MelodyRules

HOMEPAGE = "https://github.com/magenta/symbolic-music-diffusion"


@dataclasses.dataclass(eq=False)
class MelodyConfig(tfds.core.BuilderConfig):
    """A melody source and how it is read.

    Attributes:
      source: 'embedded', 'lmd_full' or 'midi_dir'.
      rules: melody extraction rules (strict Magenta or the 16-step-bar stream).
      window_chunks: k, chunks per song window (melody_windows only).
      stride: chunks between window starts (melody_windows only).
      split_fractions: split name -> share of the songs.
      seed: seed of the song split.
      max_tunes: embedded only: read just the first `max_tunes` tunes (quick slices).
      midi_dir: midi_dir only: the folder to read instead of TFDS's manual dir.
      workers: processes that parse and extract (default: all cores).
    """

    source: str = "embedded"
    rules: MelodyRules = MelodyRules()
    window_chunks: int = 32
    stride: int = 1
    split_fractions: tuple[tuple[str, float], ...] = tuple(splits.EMBEDDED_FRACTIONS.items())
    seed: int = 0
    max_tunes: int | None = None
    midi_dir: str | None = None
    workers: int | None = None


EMBEDDED = MelodyConfig(
    name="embedded",
    description=(
        "music21 folk corpora (Essen, O'Neill's 1850, Aird's Airs). Tunes are read as a continuous "
        "stream of 16-step bars (time signatures ignored) because most are in 2/4, 3/4 or 6/8; "
        "windows of k=4 chunks (8 bars), stride 1; split 90/5/5 by tune."
    ),
    source="embedded",
    rules=MelodyRules(stream_bars=True),
    window_chunks=4,
)
LMD_FULL = MelodyConfig(
    name="lmd_full",
    description=(
        "Lakh MIDI LMD-full (manual download), as the paper's released pipeline: Magenta's rules (16-step "
        "bars only, songs over an hour skipped), a melody from every non-drum instrument; windows of k=32 "
        "chunks (64 bars), stride 1; split 99/0.5/0.5."
    ),
    source="lmd_full",
    rules=MelodyRules(),
    split_fractions=tuple(splits.LMD_FRACTIONS.items()),
)
LMD_FULL_PROGRAMS_0_31 = dataclasses.replace(
    LMD_FULL,
    name="lmd_full_programs_0_31",
    description="lmd_full with MusicVAE's default program filter: melodies from programs 0-31 only.",
    rules=MelodyRules(valid_programs=MEL_PROGRAMS),
)
MIDI_DIR = MelodyConfig(
    name="midi_dir",
    description=(
        "Any folder of MIDI files (recursively) in the manual dir. Magenta's rules (16-step bars only); "
        "windows of k=32 chunks, stride 1; split 90/5/5 by file."
    ),
    source="midi_dir",
)
CONFIGS = [EMBEDDED, LMD_FULL, LMD_FULL_PROGRAMS_0_31, MIDI_DIR]

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
embedded: nothing to download (the corpus ships with music21).
lmd_full (and lmd_full_programs_0_31): download {midi_files.LMD_FULL_URL} and put lmd_full.tar.gz (or the extracted lmd_full/
  folder) in the manual dir (`--manual_dir=...`, default <data_dir>/downloads/manual/).
midi_dir: put (or point `--manual_dir` at) a folder of .mid/.midi files; it is read recursively.
"""


class MelodyBuilder(WithArrayRecordCopy, tfds.core.GeneratorBasedBuilder, abc.ABC):
    """Reads songs from the config's source, splits them by song and emits examples per song."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = CONFIGS
    DEFAULT_CONFIG_NAME = "embedded"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    @abc.abstractmethod
    def _features(self) -> tfds.features.FeaturesDict:
        """The example features."""

    @abc.abstractmethod
    def _song_examples(
        self, song: songs.SongChunks, tally: collections.Counter
    ) -> Iterator[tuple[str, dict]]:
        """(key, example) pairs of one kept song; counts what it emits or drops in `tally`."""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=self._features(),
            homepage=HOMEPAGE,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config: MelodyConfig = self.builder_config
        by_split = splits.songs_by_split(self._song_ids(dl_manager), dict(config.split_fractions), config.seed)
        return {name: self._generate_examples(name, song_ids) for name, song_ids in by_split.items()}

    def _song_ids(self, dl_manager) -> list[str]:
        config: MelodyConfig = self.builder_config
        if config.source == "embedded":
            self._tunes = {t.song_id: t for t in corpus.corpus_tunes(max_tunes=config.max_tunes)}
            return list(self._tunes)
        if config.source == "lmd_full":
            self._midi_source = midi_files.lmd_archive_or_folder(dl_manager.manual_dir)
        elif config.source == "midi_dir":
            self._midi_source = config.midi_dir or dl_manager.manual_dir
        else:
            raise ValueError(f"unknown melody source {config.source!r}: use embedded, lmd_full or midi_dir")
        if os.path.isdir(self._midi_source):
            song_ids = midi_files.list_midi_files(self._midi_source)
        else:
            song_ids = midi_files.list_archive_midi(self._midi_source)
        if not song_ids:
            raise FileNotFoundError(
                f"No MIDI files (.mid/.midi/.kar) under {self._midi_source}.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        return song_ids

    def _songs(self, song_ids: list[str], tally: collections.Counter) -> Iterator[songs.SongChunks]:
        config: MelodyConfig = self.builder_config
        if config.source == "embedded":
            tunes = [self._tunes[s] for s in song_ids]
            return songs.iter_corpus_songs(tunes, config.rules, tally, config.workers)
        return songs.iter_midi_songs(self._midi_source, song_ids, config.rules, tally, config.workers)

    def _generate_examples(self, split: str, song_ids: list[str]):
        tally: collections.Counter = collections.Counter()
        for song in self._songs(song_ids, tally):
            for key, example in self._song_examples(song, tally):
                tally["examples"] += 1
                yield key, example
        examples = tally["examples"]
        self.info.metadata.setdefault("tally", {})[split] = dict(sorted(tally.items()))
        print(f"{self.name}/{self.builder_config.name} {split}: tally\n"
              f"{json.dumps(dict(sorted(tally.items())), indent=1)}")
        if examples == 0:  # TFDS cannot write an empty split; say why it is empty instead
            raise ValueError(
                f"{self.name}/{self.builder_config.name}: the {split} split is empty: no example came out "
                f"of its {len(song_ids)} songs. Skips by reason: {dict(tally)}. Check the source files "
                "(for melody_windows, that songs are at least window_chunks 2-bar chunks long); with very "
                "few songs, use fewer splits (MelodyConfig.split_fractions) or another seed."
            )


def chunk_key(song_id: str, melody_index: int, chunk_index: int) -> str:
    return f"{song_id}#{melody_index}#{chunk_index}"


def events_feature(shape: tuple[int, ...]) -> tfds.features.Tensor:
    return tfds.features.Tensor(shape=shape, dtype=np.int32)
