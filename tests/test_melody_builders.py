"""The melody TFDS builders on real MIDI files (tests/data/midi), a bad-input folder and a corpus slice."""
import collections
import dataclasses
import pathlib
import shutil
import tarfile

import numpy as np
import pretty_midi
import pytest
import tensorflow_datasets as tfds

from smdiff.data import midi_files
from tfds_builders import melody_common
from tfds_builders.melody_chunks import MelodyChunks
from tfds_builders.melody_windows import MelodyWindows

MIDI_DIR = pathlib.Path(__file__).parent / "data" / "midi"
# Windows of 2 chunks: the test tunes are 8-12 chunks long (the midi_dir default, k=32, needs 64 bars).
# Seed 1 puts the one tune the strict rules skip (3/4) in train, so no split comes out empty.
MIDI_DIR_K2 = dataclasses.replace(
    melody_common.MIDI_DIR, name="midi_dir_k2", window_chunks=2, seed=1, workers=1)


def build(builder_cls, config, data_dir, manual_dir=None):
    builder = builder_cls(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
    )
    return builder


def read_split(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_builders_are_registered_by_import():
    names = tfds.list_builders(with_community_datasets=False)
    assert "melody_chunks" in names and "melody_windows" in names
    assert [c.name for c in MelodyWindows.BUILDER_CONFIGS] == [
        "embedded", "lmd_full", "lmd_full_programs_0_31", "midi_dir"]


def test_midi_dir_windows_real_files(tmp_path, capsys):
    builder = build(MelodyWindows, MIDI_DIR_K2, tmp_path, MIDI_DIR)
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    # validation: altdeu10_0115 (8 chunks, 7 windows), test: altdeu10_0312 (12 chunks, 11 windows).
    assert splits == {"train": 54, "validation": 7, "test": 11}
    song_ids = {}
    for split in splits:
        examples = read_split(builder, split)
        song_ids[split] = {e["song_id"].decode() for e in examples}
        for example in examples:
            events = example["events"]  # [k, 32]
            assert events.shape == (2, 32) and events.dtype == np.int32
            assert events.min() >= 0 and events.max() < 90
            assert np.all(np.any(events > 1, axis=-1)), "a window holds an all-rest chunk"
    # Splits are disjoint by song, and hold every kept 4/4 tune (the 3/4 tune is skipped).
    assert not (song_ids["train"] & song_ids["validation"] or song_ids["train"] & song_ids["test"]
                or song_ids["validation"] & song_ids["test"])
    kept = set().union(*song_ids.values())
    assert {pathlib.Path(s).parent.name for s in kept} <= {"four_four", "other_meters"}
    assert len(kept) == 9 and "other_meters/altdeu10_0005.mid" not in kept
    tally = builder.info.metadata["tally"]
    assert sum(t.get("skipped_song/no_16_step_bars", 0) for t in tally.values()) == 1
    assert "skipped_song/no_16_step_bars" in capsys.readouterr().out  # the tally is printed


def test_midi_dir_chunks_real_files(tmp_path):
    builder = build(MelodyChunks, dataclasses.replace(MIDI_DIR_K2, window_chunks=32), tmp_path, MIDI_DIR)
    examples = [e for split in ("train", "validation", "test") for e in read_split(builder, split)]
    assert len(examples) == builder.info.metadata["tally"]["train"]["chunks"] + sum(
        builder.info.metadata["tally"][s]["chunks"] for s in ("validation", "test"))
    assert all(e["events"].shape == (32,) and e["events"].max() > 1 for e in examples)


def test_lmd_full_reads_the_archive_like_a_folder(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    with tarfile.open(manual / "lmd_full.tar.gz", "w:gz") as tar:
        for path in sorted(MIDI_DIR.rglob("*.mid")):
            tar.add(path, arcname=str(path.relative_to(MIDI_DIR)))
    # Lakh's rules and split fractions; seed 1 as in MIDI_DIR_K2.
    config = dataclasses.replace(melody_common.LMD_FULL, name="lmd_test", seed=1, workers=1)
    builder = build(MelodyChunks, config, tmp_path / "tfds", manual)
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    assert splits == {"train": 61, "validation": 8, "test": 12}  # as from the folder (chunk counts)


def test_lmd_full_takes_melodies_from_every_non_drum_instrument():
    """The paper's released pipeline extracts a melody from every non-drum instrument; MusicVAE's default
    (programs 0-31) is the lmd_full_programs_0_31 option. A real tune played by strings (program 48) next
    to the same tune on piano: lmd_full keeps both melodies, the option only the piano's."""
    from note_seq import midi_io

    from smdiff.data.melody import MEL_PROGRAMS, extract_melodies

    song = pretty_midi.PrettyMIDI(str(sorted((MIDI_DIR / "four_four").glob("*.mid"))[0]))
    strings = pretty_midi.Instrument(program=48)
    strings.notes = [pretty_midi.Note(n.velocity, n.pitch + 12, n.start, n.end) for n in song.instruments[0].notes]
    song.instruments[0].program = 0
    song.instruments.append(strings)
    ns = midi_io.midi_to_note_sequence(song)
    paper = extract_melodies(ns, melody_common.LMD_FULL.rules)
    magenta = extract_melodies(ns, melody_common.LMD_FULL_PROGRAMS_0_31.rules)
    assert melody_common.LMD_FULL.rules.valid_programs is None
    assert melody_common.LMD_FULL_PROGRAMS_0_31.rules.valid_programs == MEL_PROGRAMS
    assert len(paper.melodies) == 2 and len(magenta.melodies) == 1
    np.testing.assert_array_equal(magenta.melodies[0], paper.melodies[0])
    assert paper.melodies[1].shape == paper.melodies[0].shape
    # Aside from the program filter the two configurations are the same.
    assert dataclasses.replace(melody_common.LMD_FULL_PROGRAMS_0_31.rules, valid_programs=None) == \
        melody_common.LMD_FULL.rules


def write_bad_input_folder(folder: pathlib.Path) -> None:
    """Real good files plus every kind of bad file the builder must count and skip."""
    good = sorted((MIDI_DIR / "four_four").glob("*.mid"))
    for path in good[:3]:
        shutil.copy(path, folder / path.name)
    shutil.copy(MIDI_DIR / "other_meters" / "altdeu10_0005.mid", folder / "odd_meter_3_4.mid")
    data = good[3].read_bytes()
    (folder / "truncated.mid").write_bytes(data[: len(data) // 2])
    (folder / "zero_length.mid").write_bytes(b"")
    (folder / "random_bytes.mid").write_bytes(np.random.default_rng(0).bytes(3000))
    (folder / "text_renamed.mid").write_text("This is a text file, not a MIDI file.\n")
    (folder / "readme.txt").write_text("not a MIDI name: ignored")
    drums = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes = [pretty_midi.Note(100, 36 + i % 3, i * 0.25, i * 0.25 + 0.1) for i in range(32)]
    drums.instruments.append(kit)
    drums.write(str(folder / "drums_only.mid"))
    noteless = pretty_midi.PrettyMIDI()
    noteless.instruments.append(pretty_midi.Instrument(program=0))
    noteless.write(str(folder / "no_notes.mid"))
    # Over an hour: a real tune followed by one note after 3,700 s.
    long_song = pretty_midi.PrettyMIDI(str(good[0]))
    long_song.instruments[0].notes.append(pretty_midi.Note(80, 60, 3700.0, 3701.0))
    long_song.write(str(folder / "over_one_hour.mid"))


def test_bad_input_folder_builds_and_counts_every_skip(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    write_bad_input_folder(folder)
    # One split (too few songs for three); two workers exercise the process pool.
    config = dataclasses.replace(MIDI_DIR_K2, name="bad_input", split_fractions=(("train", 1.0),), workers=2)
    builder = build(MelodyWindows, config, tmp_path / "tfds", folder)
    tally = collections.Counter()
    for split_tally in builder.info.metadata["tally"].values():
        tally.update(split_tally)
    assert tally["songs_read"] == 11  # readme.txt is not a MIDI name
    assert tally["songs_kept"] == 3
    expected = {
        "corrupt_midi": 1, "empty_file": 1, "not_midi": 2, "drums_only": 1, "no_notes": 1,
        "too_long": 1, "no_16_step_bars": 1,
    }
    assert {r: tally[f"skipped_song/{r}"] for r in expected} == expected
    assert builder.info.splits["train"].num_examples > 0


def test_empty_result_is_an_error(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.mid").write_bytes(b"")
    (folder / "b.mid").write_text("not midi")
    shutil.copy(MIDI_DIR / "other_meters" / "altdeu10_0005.mid", folder / "c.mid")
    # The folder comes from the config's `midi_dir` here, not from TFDS's manual dir.
    config = dataclasses.replace(MIDI_DIR_K2, name="junk", split_fractions=(("train", 1.0),), midi_dir=str(folder))
    with pytest.raises(ValueError, match="train split is empty") as error:
        build(MelodyChunks, config, tmp_path / "tfds")
    assert "skipped_song/no_16_step_bars" in str(error.value)


def test_missing_sources_say_what_to_do(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    # An empty manual dir: TFDS's own check prints our instructions, with the download address.
    with pytest.raises(AssertionError, match=midi_files.LMD_FULL_URL):
        build(MelodyChunks, "lmd_full", tmp_path / "tfds", manual)
    (manual / "notes.txt").write_text("something else")
    with pytest.raises(FileNotFoundError, match="lmd_full.tar.gz") as error:
        build(MelodyChunks, "lmd_full", tmp_path / "tfds", manual)
    assert midi_files.LMD_FULL_URL in str(error.value) and str(manual) in str(error.value)
    with pytest.raises(FileNotFoundError, match="No MIDI files"):
        build(MelodyChunks, "midi_dir", tmp_path / "tfds", manual)


@pytest.mark.slow
def test_embedded_slice_builds_both_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("SMDIFF_CACHE_DIR", str(tmp_path / "cache"))
    config = dataclasses.replace(melody_common.EMBEDDED, name="embedded_slice", max_tunes=30, workers=1)
    windows = build(MelodyWindows, config, tmp_path / "tfds")
    chunks = build(MelodyChunks, config, tmp_path / "tfds")
    for builder in (windows, chunks):
        assert {name: info.num_examples > 0 for name, info in builder.info.splits.items()} == {
            "train": True, "validation": True, "test": True}
    window = read_split(windows, "validation")[0]
    assert window["events"].shape == (4, 32)
    # Windows of a song are consecutive chunks of that song's chunk set.
    song_chunks = {tuple(e["events"]) for e in read_split(chunks, "validation")
                   if e["song_id"] == window["song_id"]}
    assert all(tuple(chunk) in song_chunks for chunk in window["events"])
