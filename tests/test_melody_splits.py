"""Song-level train/validation/test splits: deterministic, disjoint, proportional."""
import pytest

from smdiff.data import splits

SONGS = [f"collection/book{i // 100}/{i:04d}" for i in range(2000)]


def test_splits_are_deterministic_disjoint_and_proportional():
    first = splits.assign_splits(SONGS, splits.EMBEDDED_FRACTIONS, seed=0)
    assert first == splits.assign_splits(list(reversed(SONGS)), splits.EMBEDDED_FRACTIONS, seed=0)
    assert set(first) == set(SONGS)  # every song in exactly one split
    counts = {name: sum(1 for s in first.values() if s == name) for name in splits.EMBEDDED_FRACTIONS}
    assert counts == {"train": 1800, "validation": 100, "test": 100}
    other_seed = splits.assign_splits(SONGS, splits.EMBEDDED_FRACTIONS, seed=1)
    assert sum(first[s] != other_seed[s] for s in SONGS) > 100


def test_lmd_fractions_and_tiny_sets_get_every_split():
    lmd = splits.assign_splits(SONGS, splits.LMD_FRACTIONS, seed=0)
    assert sum(1 for s in lmd.values() if s == "train") == 1980
    tiny = splits.assign_splits(["a", "b", "c"], splits.EMBEDDED_FRACTIONS, seed=0)
    assert sorted(tiny.values()) == ["test", "train", "validation"]
    only_train = splits.assign_splits(["a", "b"], {"train": 1.0}, seed=0)
    assert set(only_train.values()) == {"train"}


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        splits.assign_splits(SONGS, {"train": 0.9, "test": 0.2}, seed=0)


def test_songs_by_split_agrees_with_the_assignment_and_mixes_the_source_order():
    # Song ids as a corpus lists them: one collection after the other.
    song_ids = [f"essen/{i}" for i in range(500)] + [f"oneills/{i}" for i in range(500)]
    by_split = splits.songs_by_split(song_ids, splits.EMBEDDED_FRACTIONS, seed=0)
    assignment = splits.assign_splits(song_ids, splits.EMBEDDED_FRACTIONS, seed=0)
    for name, ids in by_split.items():
        assert sorted(ids) == sorted(s for s in song_ids if assignment[s] == name)
    first_train = by_split["train"][:100]  # what a quick slice of the train split reads
    assert 20 < sum(s.startswith("oneills") for s in first_train) < 80
