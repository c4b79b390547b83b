"""The embedded corpus reader: tunes of music21's ABC files as NoteSequences, parsed once and cached."""
import pathlib

import pytest

from smdiff.data import corpus

PICKUP_TUNE = """X:1
T: Pickup test
M:4/4
L:1/4
Q:1/4=90
K:C
G | c d e f | g2 g2 | (3ABc d2- | d4 |]
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMDIFF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_split_tunes_prefixes_the_file_header():
    text = "% file header\nL:1/8\n\nX:1\nT:a\nK:C\nCDE|\n\nX:2\nT:b\nK:G\nGAB|\n"
    tunes = corpus.split_tunes("essenFolksong", pathlib.Path("book.abc"), text)
    assert [t.song_id for t in tunes] == ["essenFolksong/book/0000", "essenFolksong/book/0001"]
    assert all(t.abc_text.startswith("% file header\nL:1/8\n") for t in tunes)
    assert "GAB" in tunes[1].abc_text and "CDE" not in tunes[1].abc_text


def test_corpus_has_all_three_collections():
    files = corpus.corpus_files()
    assert {collection for collection, _ in files} == set(corpus.COLLECTIONS)
    assert len(corpus.corpus_tunes(max_tunes=25)) == 25


def test_tune_to_note_sequence_keeps_tempo_meter_and_aligns_the_pickup(cache):
    (parsed,) = corpus.parse_tunes([corpus.Tune("test/pickup/0000", PICKUP_TUNE)], workers=1)
    ns = parsed.note_sequence
    assert ns is not None, parsed.error
    assert [t.qpm for t in ns.tempos] == [90.0]
    assert [(t.numerator, t.denominator, t.time) for t in ns.time_signatures] == [(4, 4, 0.0)]
    seconds_per_quarter = 60.0 / 90.0
    # The one-beat pickup is shifted by 3 beats so that the first full bar starts at beat 4.
    assert ns.notes[0].pitch == 67 and ns.notes[0].start_time == pytest.approx(3 * seconds_per_quarter)
    assert ns.notes[1].start_time == pytest.approx(4 * seconds_per_quarter)
    # The tie d2- | d4 is one note of 6 beats; the triplet notes last a third of a half note each.
    assert ns.notes[-1].end_time - ns.notes[-1].start_time == pytest.approx(6 * seconds_per_quarter)
    assert ns.notes[-2].end_time - ns.notes[-2].start_time == pytest.approx(2 / 3 * seconds_per_quarter)


def test_real_tunes_are_parsed_once_then_read_from_the_cache(cache, monkeypatch):
    tunes = corpus.corpus_tunes(max_tunes=6)
    first = list(corpus.parse_tunes(tunes, workers=1))
    assert all(t.note_sequence is not None and len(t.note_sequence.notes) > 10 for t in first)

    def no_parsing(tune):
        raise AssertionError(f"parsed {tune.song_id} again")

    monkeypatch.setattr(corpus, "parse_tune", no_parsing)
    second = list(corpus.parse_tunes(tunes, workers=1))
    assert [t.note_sequence for t in second] == [t.note_sequence for t in first]
    changed = corpus.Tune(tunes[0].song_id, tunes[0].abc_text.replace("K:", "K:\n", 1))
    with pytest.raises(AssertionError, match="parsed"):
        list(corpus.parse_tunes([changed], workers=1))


def test_unreadable_tune_is_reported_and_cached_not_raised(cache):
    bad = corpus.Tune("test/bad/0000", "X:1\nL:1/0\nK:C\nCDEF|\n")  # a zero note length
    for _ in range(2):  # parsed, then read back from the cache
        (parsed,) = corpus.parse_tunes([bad], workers=1)
        assert parsed.note_sequence is None and "ZeroDivisionError" in parsed.error
