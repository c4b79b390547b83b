"""`make demo`'s pipeline end to end on a corpus slice: every stage runs as the command it prints, the
evaluation writes Table 1 and its figures, and a second run skips the finished stages."""
import dataclasses
import json
import os

import pytest

from smdiff import demo

TINY = dataclasses.replace(demo.QUICK, max_examples=300, vae_steps=30, prior_steps=30, mdn_steps=30,
                           num_samples=16, diffusion_sampler=("--sampler=ddim", "--num_sampling_steps=5", "--eta=1"),
                           reverse_every=1)


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = str(tmp_path)
    seconds = demo.run(out, TINY)
    assert list(seconds) == [name for name, _ in demo.stages(out, TINY)]
    table = json.load(open(os.path.join(out, "evaluation", "table1.json")))
    assert set(table) == {"Train", "Test", "Diffusion", "Autoregression (MDN)", "Interpolation", "N(0,I) prior"}
    assert "infilling" not in table["Autoregression (MDN)"] and "infilling" in table["Diffusion"]
    midi = os.listdir(os.path.join(out, "samples", "diffusion", "infilling-00000-of-00001", "midi"))
    assert len(midi) == TINY.num_samples
    assert os.path.exists(os.path.join(out, "evaluation", "figures", "infilling_example_0.png"))
    along = json.load(open(os.path.join(out, "evaluation", "reverse_process.json")))
    assert along["steps"] == [1000, 800, 600, 400, 200]  # DDIM's 5 steps, each one recorded (Fig. 3)
    assert os.path.exists(os.path.join(out, "evaluation", "figures", "reverse_process.png"))

    capsys.readouterr()
    again = demo.run(out, TINY)
    assert again == seconds  # every stage was skipped and reports its earlier time
    assert capsys.readouterr().out.count("done earlier") == len(seconds)
