"""Chunked sharding of sampling output: coverage, completion marked last, resume, reproducible files."""
import time

import numpy as np
import pytest
from etils import epath

from smdiff.sampling import shards


@pytest.mark.parametrize("num_shards", [1, 2, 3])
@pytest.mark.parametrize("num_samples,chunk_size", [(1000, 128), (7, 3), (5, 5)])
def test_shards_cover_every_sample_exactly_once(num_shards, num_samples, chunk_size):
    plan = shards.plan_chunks(num_samples, chunk_size)
    covered = []
    for shard_id in range(num_shards):
        for chunk in shards.shard_chunks(plan, shard_id, num_shards):
            covered.extend(range(chunk.start, chunk.start + chunk.size))
    assert sorted(covered) == list(range(num_samples))


def test_chunk_names_follow_t5x_pattern():
    plan = shards.plan_chunks(40, 10)
    assert [c.name("uncond") for c in plan][1] == "uncond-00001-of-00004"


def test_bad_shard_arguments_raise():
    with pytest.raises(ValueError, match="shard_id"):
        shards.shard_chunks(shards.plan_chunks(10, 5), 2, 2)
    with pytest.raises(ValueError, match="positive"):
        shards.plan_chunks(0, 5)


def _writer(values):
    def write_files(folder):
        shards.save_npz(folder / "values.npz", {"values": values})
        return {"count": len(values)}
    return write_files


def test_killed_chunk_is_redone_and_finished_chunks_are_kept(tmp_path):
    out = str(tmp_path)
    plan = shards.plan_chunks(6, 2)
    shards.write_chunk(out, "s", plan[0], _writer(np.arange(2)))

    def killed(folder):
        shards.save_npz(folder / "values.npz", {"values": np.arange(1)})
        raise KeyboardInterrupt  # the process dies half-way through the chunk

    with pytest.raises(KeyboardInterrupt):
        shards.write_chunk(out, "s", plan[1], killed)
    # Files first, marker last: the half-written chunk is in its final folder, without a marker.
    assert (tmp_path / plan[1].name("s") / "values.npz").exists()
    assert not (tmp_path / plan[1].name("s") / shards.DONE_MARKER).exists()
    assert not shards.is_complete(out, "s", plan[1])
    assert [str(folder) for folder in shards.completed_chunks(out, "s")] == [str(tmp_path / plan[0].name("s"))]

    # The re-run skips chunk 0 and redoes chunk 1 from scratch.
    todo = [c for c in plan if not shards.is_complete(out, "s", c)]
    assert [c.index for c in todo] == [1, 2]
    for chunk in todo:
        shards.write_chunk(out, "s", chunk, _writer(np.arange(chunk.size) + chunk.start))
    done = shards.completed_chunks(out, "s")
    assert len(done) == 3 and not any(".partial" in str(path) for path in tmp_path.rglob("*"))
    assert np.concatenate([shards.load_npz(d / "values.npz")["values"] for d in done]).tolist() == list(range(6))


def test_a_marker_that_does_not_parse_is_not_a_completed_chunk(tmp_path):
    chunk = shards.plan_chunks(2, 2)[0]
    shards.write_chunk(str(tmp_path), "s", chunk, _writer(np.arange(2)))
    marker = tmp_path / chunk.name("s") / shards.DONE_MARKER
    marker.write_text(marker.read_text()[:10])  # cut short
    assert not shards.is_complete(str(tmp_path), "s", chunk) and shards.completed_chunks(str(tmp_path), "s") == []


def test_saved_arrays_are_the_same_bytes_every_time(tmp_path):
    arrays = {"values": np.arange(7, dtype=np.int16), "rolls": np.eye(3, dtype=bool)}
    shards.save_npz(tmp_path / "a.npz", arrays)
    time.sleep(2.1)  # np.savez would stamp the members with a later time (zip times have 2 s steps)
    shards.save_npz(epath.Path(tmp_path) / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = np.load(tmp_path / "a.npz")
    assert all(np.array_equal(loaded[name], value) and loaded[name].dtype == value.dtype
               for name, value in arrays.items())


def test_a_run_with_other_settings_is_refused(tmp_path):
    chunk = shards.plan_chunks(4, 2)[0]
    shards.write_chunk(str(tmp_path), "s", chunk, _writer(np.arange(2)), {"seed": 0, "sampler": "ddpm"})
    shards.check_same_run(str(tmp_path), ["s"], {"seed": 0, "sampler": "ddpm"})
    with pytest.raises(ValueError, match="seed: 0 there, 1 now"):
        shards.check_same_run(str(tmp_path), ["s"], {"seed": 1, "sampler": "ddpm"})
