"""The Bach chorales that ship with music21, as `Piece`s of four voice tracks, cached on disk.

Parsing the ~370 chorales takes a minute or more, so it runs on a process pool and the result is cached
under `$SMDIFF_CACHE_DIR` (default `~/.cache/smdiff`), keyed by the time resolution and music21 version.
"""
from __future__ import annotations

import collections
import os
import pickle

import music21
import numpy as np
from music21 import corpus

from smdiff.data import pools
from smdiff.data.pianoroll import Piece

VOICES = ("Soprano", "Alto", "Tenor", "Bass")


def cache_dir() -> str:
    return os.environ.get("SMDIFF_CACHE_DIR", os.path.expanduser("~/.cache/smdiff"))


def part_to_notes(part: music21.stream.Part, steps_per_quarter: int) -> np.ndarray:
    """A music21 part -> note array int32 [n, 3]; tied notes merged, chords split, grace notes dropped."""
    rows = []
    for element in part.stripTies().flatten().notes:
        start = round(float(element.offset) * steps_per_quarter)
        end = round(float(element.offset + element.quarterLength) * steps_per_quarter)
        if end <= start:  # a grace note or an ornament shorter than one step
            continue
        for pitch in element.pitches:
            rows.append((start, end, pitch.midi))
    return np.asarray(rows, np.int32).reshape(-1, 3)


def parse_chorale(name: str, steps_per_quarter: int) -> Piece | str:
    """One chorale -> Piece with tracks S, A, T, B; or the reason it is skipped."""
    try:
        score = corpus.parse(name)
    except Exception as error:  # music21 raises many types for unreadable files
        return f"unparseable ({type(error).__name__})"
    if len(score.parts) != len(VOICES):
        return f"{len(score.parts)} parts, not 4"
    tracks = tuple(part_to_notes(part, steps_per_quarter) for part in score.parts)
    if any(len(track) == 0 for track in tracks):
        return "an empty voice"
    num_steps = int(max(track[:, 1].max() for track in tracks))
    return Piece(name=name, tracks=tracks, num_steps=num_steps)


def _parse_star(args: tuple[str, int]) -> tuple[str, Piece | str]:
    return args[0], parse_chorale(*args)


def load_chorales(
    steps_per_quarter: int = 4, limit: int | None = None, processes: int = 2
) -> tuple[list[Piece], collections.Counter]:
    """All four-voice chorales (the first `limit` if given) and a Counter of skip reasons.

    The full corpus is cached after its first parse; a limited load reads the cache when it exists
    and otherwise parses only what it needs (so tests stay fast).
    """
    path = os.path.join(
        cache_dir(), f"bach_chorales-spq{steps_per_quarter}-music21_{music21.__version__}.pkl"
    )
    if os.path.exists(path):
        with open(path, "rb") as f:
            pieces, skips = pickle.load(f)
        return (pieces[:limit] if limit else pieces), skips

    # The iterator follows Riemenschneider's numbering, which lists some files twice: keep one of each.
    names = list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))
    if limit:
        names = names[:limit]
    jobs = [(name, steps_per_quarter) for name in names]
    if processes > 1:
        with pools.process_context([__name__]).Pool(processes) as pool:
            results = pool.map(_parse_star, jobs, chunksize=8)
    else:
        results = [_parse_star(job) for job in jobs]
    pieces = [result for _, result in results if isinstance(result, Piece)]
    skips = collections.Counter(result for _, result in results if isinstance(result, str))
    if not pieces:
        raise RuntimeError(f"no usable chorale in music21's corpus (skips: {dict(skips)})")
    if not limit:
        os.makedirs(cache_dir(), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            pickle.dump((pieces, skips), f)
        os.replace(path + ".tmp", path)
    return pieces, skips
