"""The embedded corpus: the monophonic folk collections that ship inside music21, as NoteSequences.

Three collections of ABC files (the Essen collection, O'Neill's 1850 collection, Aird's Airs) hold
about 11,700 tunes; each tune is one song. A file is split into its tunes (`X:` headers; the file's own
header lines are prepended to every tune, as ABC prescribes), each tune is parsed by music21 and
converted to a NoteSequence that keeps its tempo marks, time signatures and one instrument per part.

Parsing ABC is slow (tens of ms per tune), so tunes are parsed in a process pool and every parsed
tune is cached on disk under `$SMDIFF_CACHE_DIR/corpus` (default `~/.cache/smdiff`), keyed by the sha1
of its text, its song id and `PARSER_VERSION`: a second build reads the cache, a changed tune is
parsed again.

A tune with a pickup bar is shifted right by the pickup's missing length, so that its first full bar
starts on a bar line of the quantized grid. Repeats are kept as written (not expanded); grace notes
(zero duration) are dropped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import re
from collections.abc import Iterator, Sequence

from note_seq.protobuf import music_pb2

from smdiff.data import pools

COLLECTIONS = ("essenFolksong", "oneills1850", "airdsAirs")
# Bump when the conversion below changes, so stale cache entries are not reused.
PARSER_VERSION = "1"
DEFAULT_QPM = 120.0
VELOCITY = 80

_TUNE_START = re.compile(r"^X:", re.MULTILINE)
# A cache entry starting with this holds the parse error of a tune music21 cannot read.
_ERROR_MARK = b"SMDIFF-PARSE-ERROR:"


@dataclasses.dataclass(frozen=True)
class Tune:
    """One ABC tune: `song_id` is `<collection>/<file stem>/<index in file>`."""

    song_id: str
    abc_text: str


@dataclasses.dataclass(frozen=True)
class ParsedTune:
    """A parsed tune: `note_sequence` is None when music21 could not read it (`error` says why)."""

    song_id: str
    note_sequence: music_pb2.NoteSequence | None
    error: str = ""


def cache_dir() -> pathlib.Path:
    """Where parsed corpus files are cached (`$SMDIFF_CACHE_DIR/corpus`, default ~/.cache/smdiff)."""
    root = os.environ.get("SMDIFF_CACHE_DIR", os.path.expanduser("~/.cache/smdiff"))
    return pathlib.Path(root) / "corpus"


def corpus_files(collections: Sequence[str] = COLLECTIONS) -> list[tuple[str, pathlib.Path]]:
    """(collection, path) of every ABC file of the given music21 collections, in a fixed order."""
    import music21  # imported here: music21 is slow to import and only this reader needs it

    files = []
    for collection in collections:
        paths = music21.corpus.getComposer(collection)
        if not paths:
            raise FileNotFoundError(f"music21 ships no corpus files for collection {collection!r}")
        files += [(collection, pathlib.Path(p)) for p in sorted(paths)]
    return files


def split_tunes(collection: str, path: pathlib.Path, text: str) -> list[Tune]:
    """Splits an ABC file into its tunes, each prefixed with the file header."""
    starts = [m.start() for m in _TUNE_START.finditer(text)]
    if not starts:
        return []
    header = text[: starts[0]]
    ends = starts[1:] + [len(text)]
    return [
        Tune(f"{collection}/{path.stem}/{index:04d}", header + text[start:end])
        for index, (start, end) in enumerate(zip(starts, ends))
    ]


def _seconds_at(quarter_offsets: list[float], tempo_marks: list[tuple[float, float]]) -> list[float]:
    """Converts offsets in quarter notes to seconds under piecewise-constant tempo marks.

    `tempo_marks` are (start offset in quarters, qpm), sorted, the first at offset 0.
    """
    # Seconds elapsed at the start of each tempo segment.
    segment_seconds = [0.0]
    for (start, qpm), (next_start, _) in zip(tempo_marks, tempo_marks[1:]):
        segment_seconds.append(segment_seconds[-1] + (next_start - start) * 60.0 / qpm)
    seconds = []
    for offset in quarter_offsets:
        segment = max(i for i, (start, _) in enumerate(tempo_marks) if start <= offset)
        start, qpm = tempo_marks[segment]
        seconds.append(segment_seconds[segment] + (offset - start) * 60.0 / qpm)
    return seconds


def score_to_note_sequence(score, song_id: str) -> music_pb2.NoteSequence:
    """Converts a music21 score to a NoteSequence (one instrument per part, tempo and meters kept)."""
    import music21

    parts = list(score.parts) or [score]
    first_measure = parts[0].getElementsByClass(music21.stream.Measure).first()
    # A pickup bar is shorter than a full bar by `paddingLeft` quarters: shift so bar lines align.
    pickup_shift = float(first_measure.paddingLeft) if first_measure is not None else 0.0

    tempo_marks = [(0.0, DEFAULT_QPM)]
    for start, _, mark in score.metronomeMarkBoundaries():
        qpm = mark.getQuarterBPM()
        if qpm:
            offset = float(start) + pickup_shift if start > 0 else 0.0
            tempo_marks = [t for t in tempo_marks if t[0] < offset] + [(offset, float(qpm))]

    ns = music_pb2.NoteSequence(id=song_id, filename=song_id, ticks_per_quarter=220)
    ns.source_info.source_type = music_pb2.NoteSequence.SourceInfo.SCORE_BASED
    ns.source_info.encoding_type = music_pb2.NoteSequence.SourceInfo.ABC
    ns.source_info.parser = music_pb2.NoteSequence.SourceInfo.MUSIC21

    offsets, notes = [], []  # offsets: [start, end, ...] in quarters; notes: (part, program, pitch)
    for part_index, part in enumerate(parts):
        instrument = part.getInstrument(returnDefault=True)
        flat = part.stripTies().flatten()
        for element in flat.notes:
            length = float(element.duration.quarterLength)
            if length <= 0:  # grace note
                continue
            start = float(element.offset) + pickup_shift
            for pitch in element.pitches:
                notes.append((part_index, instrument.midiProgram or 0, pitch.midi))
                offsets += [start, start + length]

    # Time signatures of the first part: {offset in quarters: (numerator, denominator)}, the last
    # one at an offset winning; `flatten()` drops the opening one, so walk the measures instead.
    meters: dict[float, tuple[int, int]] = {}
    for meter in parts[0].recurse().getElementsByClass(music21.meter.TimeSignature):
        offset = float(meter.getOffsetInHierarchy(parts[0]))
        meters[offset + pickup_shift if offset > 0 else 0.0] = (meter.numerator, meter.denominator)
    previous = None
    for offset in sorted(meters):
        if meters[offset] != previous:
            numerator, denominator = previous = meters[offset]
            ns.time_signatures.add(
                time=_seconds_at([offset], tempo_marks)[0], numerator=numerator, denominator=denominator
            )

    seconds = _seconds_at(offsets, tempo_marks)
    for i, (part_index, program, pitch) in enumerate(notes):
        ns.notes.add(
            pitch=pitch,
            velocity=VELOCITY,
            start_time=seconds[2 * i],
            end_time=seconds[2 * i + 1],
            instrument=part_index,
            program=program,
        )
    for start, qpm in tempo_marks:
        ns.tempos.add(time=_seconds_at([start], tempo_marks)[0], qpm=qpm)
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    return ns


def parse_tune(tune: Tune) -> ParsedTune:
    """Parses one ABC tune with music21; a tune music21 cannot read comes back with its error."""
    import music21

    try:
        score = music21.converter.parse(tune.abc_text, format="abc")
        if isinstance(score, music21.stream.Opus):
            score = score.scores[0]
        return ParsedTune(tune.song_id, score_to_note_sequence(score, tune.song_id))
    except Exception as error:  # music21 raises many exception types on malformed ABC
        return ParsedTune(tune.song_id, None, f"{type(error).__name__}: {error}")


def _cache_path(tune: Tune) -> pathlib.Path:
    digest = hashlib.sha1((PARSER_VERSION + tune.song_id + tune.abc_text).encode()).hexdigest()
    return cache_dir() / digest[:2] / f"{digest}.pb"


def _read_cached(tune: Tune) -> ParsedTune:
    data = _cache_path(tune).read_bytes()
    if data.startswith(_ERROR_MARK):
        return ParsedTune(tune.song_id, None, data[len(_ERROR_MARK) :].decode())
    return ParsedTune(tune.song_id, music_pb2.NoteSequence.FromString(data))


def _parse_and_cache(tune: Tune) -> None:
    """Pool worker: parses a tune and writes its NoteSequence (or its error) to the cache."""
    parsed = parse_tune(tune)
    if parsed.note_sequence is not None:
        data = parsed.note_sequence.SerializeToString()
    else:
        data = _ERROR_MARK + parsed.error.encode()
    path = _cache_path(tune)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.rename(path)  # atomic: a killed build never leaves a truncated cache entry


# Tunes parsed per pool round: enough to keep the workers busy, few enough to stop soon after a slice.
PARSE_BLOCK = 128


def corpus_tunes(collections: Sequence[str] = COLLECTIONS, max_tunes: int | None = None) -> list[Tune]:
    """The unparsed tunes of the collections in a fixed order (optionally only the first `max_tunes`)."""
    tunes = []
    for collection, path in corpus_files(collections):
        tunes += split_tunes(collection, path, path.read_text(encoding="latin-1"))
        if max_tunes is not None and len(tunes) >= max_tunes:
            return tunes[:max_tunes]
    return tunes


def parse_tunes(tunes: Sequence[Tune], workers: int | None = None) -> Iterator[ParsedTune]:
    """Yields the parsed tunes in order. Tunes not in the cache are parsed in a process pool, one block of
    `PARSE_BLOCK` tunes at a time, so a consumer that stops early (a quick slice of the corpus) never waits
    for the whole corpus to be parsed; closing the generator stops the pool."""
    workers = workers or os.cpu_count() or 1
    pool = None
    try:
        for start in range(0, len(tunes), PARSE_BLOCK):
            block = tunes[start:start + PARSE_BLOCK]
            uncached = [tune for tune in block if not _cache_path(tune).exists()]
            if len(uncached) > 1 and workers > 1:
                if pool is None:
                    pool = pools.process_context([__name__]).Pool(workers)
                for _ in pool.imap_unordered(_parse_and_cache, uncached, chunksize=4):
                    pass
            else:
                for tune in uncached:
                    _parse_and_cache(tune)
            if uncached:
                logging.info("Parsed %d uncached corpus tunes (up to tune %d of %d).", len(uncached),
                             start + len(block), len(tunes))
            for tune in block:
                yield _read_cached(tune)
    finally:
        if pool is not None:
            pool.terminate()
