"""benchmarks/accelerator_check.py: runs without TensorFlow, gin or music libraries, and its paper
configurations are the gin files'."""
import dataclasses
import pathlib
import subprocess
import sys

import gin
import pytest

from benchmarks import accelerator_check
from smdiff import configurables  # noqa: F401  (registers the gin configurables)

ROOT = pathlib.Path(__file__).parent.parent
# What the GPU machine lacks: importing any of these fails there, so it fails here too.
BLOCKED = ("tensorflow", "tensorflow_datasets", "gin", "clu", "wandb", "note_seq", "music21")
RUN_BLOCKED = f"""
import runpy, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ImportError('blocked: ' + name + ' is not on the accelerator machine')
sys.meta_path.insert(0, Blocker())
sys.argv = ['accelerator_check'] + sys.argv[1:]
runpy.run_module('benchmarks.accelerator_check', run_name='__main__')
"""


@pytest.mark.slow
def test_tiny_check_runs_with_tensorflow_gin_and_music_libraries_blocked(tmp_path):
    out = tmp_path / "check.md"
    subprocess.run([sys.executable, "-c", RUN_BLOCKED, "--size=tiny", f"--out={out}", "--sample_batches=4",
                    "--min_seconds=0", "--dtypes=bfloat16"], cwd=ROOT, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    text = out.read_text()
    for row in ("| TransformerDDPM | bfloat16 |", "| TransformerMDN | bfloat16 |", "| MusicVAE big | bfloat16 |",
                "| binomial U-Net | bfloat16 |", "| DDPM ancestral, 5 steps | bfloat16 | 4 |",
                "| DDIM, 2 steps | bfloat16 | 4 |", "| TransformerMDN, 32 positions (KV cache) | bfloat16 | 4 |"):
        assert row in text
    assert "Skipped" not in text and "x cpu" in text


def _gin_task(*files: str):
    gin.clear_config()
    gin.parse_config_files_and_bindings([str(ROOT / f) for f in files], [])
    task = gin.query_parameter("train.task").scoped_configurable_fn()
    batch = gin.query_parameter("train.global_batch_size") if len(files) > 1 else None
    return task, batch


def test_paper_size_matches_the_gin_paper_configurations():
    paper = accelerator_check.SIZES["paper"]
    cases = [
        ("TransformerDDPM", paper.ddpm, ("gin/models/transformer_ddpm_paper.gin", "gin/runs/diffusion_paper.gin")),
        ("TransformerMDN", paper.mdn, ("gin/models/transformer_mdn_paper.gin", "gin/runs/mdn_paper.gin")),
        ("MusicVAE big", paper.vae, ("gin/models/melody_vae_big.gin", "gin/runs/melody_vae_paper.gin")),
    ]
    for name, config, files in cases:
        task, batch = _gin_task(*files)
        assert dataclasses.asdict(task.model.config) == dataclasses.asdict(config), name
        assert batch == paper.batches[name], name
    gin.clear_config()
    gin.parse_config_files_and_bindings([str(ROOT / "gin/models/unet_paper.gin"), str(ROOT / "gin/runs/binomial_paper.gin")],
                                        ["binomial.BinomialTask.density = 0.1"])
    task = gin.query_parameter("train.task").scoped_configurable_fn()
    assert task.model.config == paper.unet
    assert gin.query_parameter("train.global_batch_size") == paper.batches["binomial U-Net"]
    gin.clear_config()
