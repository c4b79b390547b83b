"""The evaluation figures are written as readable PNGs of the expected layout."""
import matplotlib.image
import numpy as np

from smdiff.evaluation import plots


def test_figures_are_written(tmp_path):
    melody = np.array([[0, 4, 60], [4, 8, 62], [8, 16, 64], [40, 48, 67]])
    rolls = {"real": melody, "diffusion": melody + [0, 0, 2], "silence": np.zeros((0, 3))}
    plots.piano_rolls(rolls, num_steps=64, path=str(tmp_path / "rolls.png"), gap_steps=(16, 48))
    steps = np.arange(1000, 0, -100)
    plots.metrics_along_reverse_process(
        steps, {"FD": steps / 10.0, "MMD": np.sqrt(steps)}, str(tmp_path / "fig3.png"))
    plots.overlap_distributions({"train": np.linspace(0.2, 1, 50), "prior": np.linspace(0, 0.8, 50)},
                                str(tmp_path / "oa.png"), "pitch")
    heights = {}
    for name in ("rolls", "fig3", "oa"):
        image = matplotlib.image.imread(tmp_path / f"{name}.png")
        assert image.ndim == 3 and image.std() > 0  # not blank
        heights[name] = image.shape[0]
    assert heights["rolls"] > heights["fig3"]  # three stacked rolls
