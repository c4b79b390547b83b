"""The gin entry point: every gin file parses; `main` writes the configs, trains, and `load_trained` rebuilds.

The end-to-end run uses the tiny deterministic Task of tests/training_tiny_task.py (a mechanics test);
it is registered with gin here, as a model's section of smdiff/configurables.py would register it.
"""
import glob
import os

import gin
import jax
import numpy as np
import pytest

from smdiff import configurables  # noqa: F401  (registers every configurable the gin files name)
from smdiff import train as train_module
from training_tiny_task import TinyRegressionTask, compilation_cache, regression_dataset  # noqa: F401

GIN_FILES = sorted(glob.glob(os.path.join(train_module.REPO_ROOT, "gin", "**", "*.gin"), recursive=True))

gin.external_configurable(TinyRegressionTask, module="tests")
gin.external_configurable(regression_dataset, module="tests")


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_there_are_run_gin_files():
    assert any("/gin/runs/" in path for path in GIN_FILES)


@pytest.mark.parametrize("path", GIN_FILES, ids=lambda path: os.path.relpath(path, train_module.REPO_ROOT))
def test_gin_file_parses(path):
    gin.add_config_file_search_path(train_module.REPO_ROOT)
    gin.parse_config_file(path)  # unknown configurables, parameters or bad syntax raise here


def _run_main(argv):
    gin.clear_config()
    train_module.FLAGS.unparse_flags()
    train_module.main(train_module.FLAGS(argv))


def test_main_trains_writes_configs_and_load_trained_rebuilds(tmp_path):
    run_file = tmp_path / "tiny.gin"
    run_file.write_text(
        f"include '{os.path.join('gin', 'runs', 'cpu_smoke.gin')}'\n"
        "train.task = @TinyRegressionTask()\n"
        "TinyRegressionTask.dropout = 0.1\n"
        "train.train_data = @train/regression_dataset()\n"
        "train/regression_dataset.num_examples = 40\n"
        "train.eval_data = @eval/regression_dataset()\n"
        "eval/regression_dataset.num_examples = 16\n"
        "train.ema_decay = 0.5\n")
    workdir = tmp_path / "run"
    _run_main(["train", f"--gin_file={run_file}", "--gin_bindings=train.num_train_steps = 4",
               f"--workdir={workdir}"])
    config = (workdir / "config.gin").read_text()
    operative = (workdir / "operative_config.gin").read_text()
    assert "train.num_train_steps = 4" in config and "train.num_train_steps = 4" in operative
    assert "TinyRegressionTask.dropout = 0.1" in operative
    assert os.path.isdir(workdir / "checkpoints" / "4")

    gin.clear_config()
    gin.parse_config("TinyRegressionTask.dropout = 0.3")  # a caller's own configuration survives loading
    task, ema_params = configurables.load_trained(str(workdir))
    assert gin.query_parameter("TinyRegressionTask.dropout") == 0.3
    _, raw_params = configurables.load_trained(str(workdir), ema=False)
    assert isinstance(task, TinyRegressionTask) and task.dropout == 0.1
    assert jax.tree.structure(ema_params) == jax.tree.structure(raw_params)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(ema_params), jax.tree.leaves(raw_params)))
    predictions = task.model.apply({"params": raw_params}, np.zeros((2, 4), np.float32))
    assert predictions.shape == (2,)


def test_a_restart_with_other_bindings_stops_and_names_them(tmp_path):
    """Each start's config is kept; a restart that changes what is trained is refused unless allowed;
    the run's length and periods may change."""
    from smdiff.training import run_config

    gin_file = tmp_path / "tiny.gin"
    gin_file.write_text(f"include '{os.path.join('gin', 'runs', 'cpu_smoke.gin')}'\n"
                        "train.task = @TinyRegressionTask()\n"
                        "train.train_data = @regression_dataset()\nregression_dataset.num_examples = 40\n")
    workdir = tmp_path / "run"
    start = ["train", f"--gin_file={gin_file}", f"--workdir={workdir}", "--gin_bindings=train.eval_every_steps = 100"]
    _run_main([*start, "--gin_bindings=train.num_train_steps = 2"])
    _run_main([*start, "--gin_bindings=train.num_train_steps = 3"])  # longer: the same run
    with pytest.raises(run_config.ConfigChangedError, match=r"(?s)Changed bindings.*TinyRegressionTask.dropout: "
                                                            r"\(unset\) -> 0.3\n  train.seed: \(unset\) -> 1"):
        _run_main([*start, "--gin_bindings=TinyRegressionTask.dropout = 0.3", "--gin_bindings=train.seed = 1"])
    assert sorted(os.listdir(workdir / "config_history")) == ["0000.gin", "0001.gin"]
    _run_main([*start, "--gin_bindings=TinyRegressionTask.dropout = 0.3", "--allow_config_change"])
    history = sorted(os.listdir(workdir / "config_history"))
    assert history == ["0000.gin", "0001.gin", "0002.gin"]
    assert "dropout = 0.3" in (workdir / "config_history" / "0002.gin").read_text()
    assert "dropout" not in (workdir / "config_history" / "0000.gin").read_text()
    _run_main([*start, "--gin_bindings=TinyRegressionTask.dropout = 0.3"])  # the allowed change is the new reference


def test_main_requires_a_workdir():
    with pytest.raises(Exception, match="--workdir is required"):
        _run_main(["train"])
