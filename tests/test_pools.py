"""The ingest pool: same results as one process, bounded read-ahead, light workers."""
import collections
import pathlib
import sys

import numpy as np

from smdiff.data import midi_files, pools, songs
from smdiff.data.melody import MelodyRules

MIDI_DIR = pathlib.Path(__file__).parent / "data" / "midi"


def _modules_loaded(_item) -> tuple[bool, bool]:
    """Pool worker: whether note_seq's extras (pandas) or TensorFlow were imported in this worker."""
    return "pandas" in sys.modules, "tensorflow" in sys.modules


def _square(x: int) -> int:
    return x * x


def test_pool_extracts_the_same_songs_as_one_process():
    song_ids = midi_files.list_midi_files(MIDI_DIR) * 3  # 33 files: more than one batch per worker
    results = {}
    for workers in (1, 2):
        tally = collections.Counter()
        results[workers] = (list(songs.iter_midi_songs(MIDI_DIR, song_ids, MelodyRules(), tally, workers)), tally)
    (one, one_tally), (two, two_tally) = results[1], results[2]
    assert one_tally == two_tally and one_tally["songs_read"] == len(song_ids)
    assert [s.song_id for s in one] == [s.song_id for s in two]
    for a, b in zip(one, two):
        assert len(a.melodies) == len(b.melodies)
        assert all(np.array_equal(x, y) for x, y in zip(a.melodies, b.melodies))


def test_ordered_map_keeps_order_and_reads_ahead_a_bounded_number_of_items():
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield i

    results = pools.ordered_map(_square, items(), workers=2, batch_size=4)
    assert next(results) == 0
    # 2 workers x 2 batches in flight x 4 items, plus the batch being filled when the first result came.
    assert pulled <= 2 * 2 * 4 + 4
    assert list(results) == [i * i for i in range(1, 1000)]


def test_workers_do_not_import_note_seq_extras_or_tensorflow():
    # note_seq's package __init__ imports pandas and bokeh (1.3 s of CPU per worker start); the
    # forkserver registers the package without it, so workers start in a fraction of that.
    assert set(pools.ordered_map(_modules_loaded, range(4), workers=2, batch_size=1)) == {(False, False)}
