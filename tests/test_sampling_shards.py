"""Chunked sharding of sampling output: coverage, atomic completion, resume."""
import os

import numpy as np
import pytest

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
        np.save(os.path.join(folder, "values.npy"), values)
        return {"count": len(values)}
    return write_files


def test_killed_chunk_is_redone_and_finished_chunks_are_kept(tmp_path):
    out = str(tmp_path)
    plan = shards.plan_chunks(6, 2)
    shards.write_chunk(out, "s", plan[0], _writer(np.arange(2)))

    def killed(folder):
        np.save(os.path.join(folder, "values.npy"), np.arange(1))
        raise KeyboardInterrupt  # the process dies half-way through the chunk

    with pytest.raises(KeyboardInterrupt):
        shards.write_chunk(out, "s", plan[1], killed)
    assert os.path.isdir(os.path.join(out, plan[1].name("s") + ".tmp"))
    assert not shards.is_complete(out, "s", plan[1])
    assert shards.completed_chunks(out, "s") == [os.path.join(out, plan[0].name("s"))]

    # The re-run skips chunk 0 and redoes chunk 1 from scratch.
    todo = [c for c in plan if not shards.is_complete(out, "s", c)]
    assert [c.index for c in todo] == [1, 2]
    for chunk in todo:
        shards.write_chunk(out, "s", chunk, _writer(np.arange(chunk.size) + chunk.start))
    done = shards.completed_chunks(out, "s")
    assert len(done) == 3 and not any(name.endswith(".tmp") for name in os.listdir(out))
    assert np.concatenate([np.load(os.path.join(d, "values.npy")) for d in done]).tolist() == list(range(6))
