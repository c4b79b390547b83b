"""From sources to per-song chunk arrays, streamed, in parallel, with every skip counted.

`iter_midi_songs` reads and extracts MIDI files in a process pool (`smdiff.data.pools`: batches of
files per task, results in order, a bounded number of batches in flight, nothing kept after it is
yielded: memory does not grow with the number of files);
`iter_corpus_songs` extracts from the cached corpus NoteSequences. Both yield `SongChunks`, and a
`collections.Counter` tally collects what happened:
  songs_read, songs_kept, melodies, chunks, all_rest_chunks, skipped_song/<reason>,
  skipped_piece/<reason> (a time-change piece of a song, e.g. in 3/4 under Magenta's rules).
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import pathlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from note_seq.protobuf import music_pb2

from smdiff.data import corpus, midi_files, pools
from smdiff.data.chunks import all_rest, melody_chunks
from smdiff.data.melody import MelodyRules, extract_melodies


@dataclasses.dataclass
class SongChunks:
    """One song: `melodies` holds each melody's consecutive chunks (int32 [num_chunks, 32], all-rest
    chunks included so window positions stay true); empty when skipped, `skip_reason` says why."""

    song_id: str
    melodies: list[np.ndarray]
    piece_skips: collections.Counter
    skip_reason: str = ""


def song_chunks(song_id: str, ns: music_pb2.NoteSequence, rules: MelodyRules) -> SongChunks:
    """Extracts a song's melodies and cuts them into chunks; a song with no full chunk is skipped."""
    extracted = extract_melodies(ns, rules)
    melodies = [chunks for chunks in map(melody_chunks, extracted.melodies) if len(chunks)]
    reason = extracted.skip_reason
    if not reason and not any((~all_rest(chunks)).any() for chunks in melodies):
        reason = "no_full_2_bar_chunk"
    return SongChunks(song_id, [] if reason else melodies, extracted.skips, reason)


def count_song(song: SongChunks, tally: collections.Counter) -> None:
    """Adds one song's outcome to the tally."""
    tally["songs_read"] += 1
    for reason, count in song.piece_skips.items():
        tally[f"skipped_piece/{reason}"] += count
    if song.skip_reason:
        tally[f"skipped_song/{song.skip_reason}"] += 1
        return
    tally["songs_kept"] += 1
    tally["melodies"] += len(song.melodies)
    for chunks in song.melodies:
        rests = int(all_rest(chunks).sum())
        tally["chunks"] += len(chunks) - rests
        tally["all_rest_chunks"] += rests


def _midi_song(task: tuple[str, bytes | str, MelodyRules]) -> SongChunks:
    """Pool worker: reads one MIDI file (given as bytes or a path) and extracts its chunks."""
    song_id, data_or_path, rules = task
    try:
        data = data_or_path if isinstance(data_or_path, bytes) else pathlib.Path(data_or_path).read_bytes()
        ns = midi_files.read_midi(data, song_id)
    except (midi_files.MidiReadError, OSError) as error:
        reason = error.reason if isinstance(error, midi_files.MidiReadError) else "unreadable_file"
        return SongChunks(song_id, [], collections.Counter(), reason)
    try:
        return song_chunks(song_id, ns, rules)
    except Exception as error:  # a file note_seq reads but cannot quantize or split: count, do not crash
        return SongChunks(song_id, [], collections.Counter(), f"extraction_error_{type(error).__name__}")


def iter_midi_songs(
    source: str | os.PathLike,
    song_ids: Sequence[str],
    rules: MelodyRules,
    tally: collections.Counter,
    workers: int | None = None,
) -> Iterator[SongChunks]:
    """Yields the kept songs among `song_ids` of a MIDI folder or .tar.gz, counting every outcome."""
    source = pathlib.Path(source)
    if source.is_dir():
        tasks = ((song_id, str(source / song_id), rules) for song_id in song_ids)
    else:
        tasks = ((name, data, rules) for name, data in midi_files.iter_archive_midi(source, set(song_ids)))
    yield from _counted(pools.ordered_map(_midi_song, tasks, workers), tally)


def iter_corpus_songs(
    tunes: Sequence[corpus.Tune],
    rules: MelodyRules,
    tally: collections.Counter,
    workers: int | None = None,
) -> Iterator[SongChunks]:
    """Yields the kept songs among the corpus `tunes` (parsed or read from the cache), counted."""

    def extracted() -> Iterator[SongChunks]:
        for parsed in corpus.parse_tunes(tunes, workers):
            if parsed.note_sequence is None:
                yield SongChunks(parsed.song_id, [], collections.Counter(), "abc_parse_error")
            else:
                yield song_chunks(parsed.song_id, parsed.note_sequence, rules)

    yield from _counted(extracted(), tally)


def _counted(songs: Iterable[SongChunks], tally: collections.Counter) -> Iterator[SongChunks]:
    for song in songs:
        count_song(song, tally)
        if tally["songs_read"] % 1000 == 0:
            logging.info("Read %d songs, kept %d.", tally["songs_read"], tally["songs_kept"])
        if not song.skip_reason:
            yield song
