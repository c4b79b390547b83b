"""Metric writers: JSON lines in the workdir, TensorBoard events, and W&B in offline mode (no network)."""
import glob
import json
import os
import time

import numpy as np

from smdiff.training import writers


def test_default_writer_writes_json_lines_and_tensorboard(tmp_path):
    writer = writers.create_writer(str(tmp_path))
    writer.write_scalars(1, {"train/loss": np.float32(2.5), "train/steps_per_sec": 3.0})
    writer.write_scalars(2, {"train/loss": 1.25})
    writer.write_texts(2, {"note": "halfway"})
    writer.write_images(2, {"roll": np.zeros((1, 4, 4, 1), np.float32)})  # TensorBoard only
    writer.close()
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert records == [{"step": 1, "train/loss": 2.5, "train/steps_per_sec": 3.0},
                       {"step": 2, "train/loss": 1.25}, {"step": 2, "note": "halfway"}]
    assert glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))


def test_wandb_writer_works_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    writer = writers.create_writer(str(tmp_path), wandb_project="smdiff-test", config={"seed": 3})
    writer.write_scalars(1, {"train/loss": 2.75})
    writer.write_images(1, {"piano_roll": np.full((2, 8, 8, 1), 255, np.uint8)})
    writer.write_histograms(1, {"weights": np.arange(10.0)})
    writer.close()
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(runs) == 1, os.listdir(tmp_path / "wandb")
    (log_file,) = glob.glob(os.path.join(runs[0], "run-*.wandb"))
    # wandb's service process may still be appending after finish() returns on a loaded machine.
    deadline = time.time() + 60
    while b"weights" not in open(log_file, "rb").read() and time.time() < deadline:
        time.sleep(0.5)
    logged = open(log_file, "rb").read()
    assert b"train/loss" in logged and b"2.75" in logged and b"weights" in logged
    assert glob.glob(os.path.join(runs[0], "files", "media", "images", "piano_roll_1_*.png"))
    # A resumed training run logs into the same W&B run.
    run_id = (tmp_path / "wandb_run_id").read_text()
    assert runs[0].endswith(run_id)
    resumed = writers.WandbWriter(str(tmp_path), "smdiff-test")
    assert resumed.run_id == run_id
    resumed.close()


def test_wandb_run_has_the_sweep_group_tags_and_every_binding(tmp_path, monkeypatch):
    from smdiff.training import run_config

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config_text = "train.seed = 1\nOptimizerConfig.learning_rate = 0.0003\nmelody_vae.MelodyVAEConfig.decoder_sizes = \\\n    (32, 32)\n"
    hparams = run_config.hparams(config_text, {"workdir": str(tmp_path), "gin_file": ["a.gin"]})
    assert hparams == {"gin/train.seed": "1", "gin/OptimizerConfig.learning_rate": "0.0003",
                       "gin/melody_vae.MelodyVAEConfig.decoder_sizes": "(32, 32)",
                       "flags/workdir": str(tmp_path), "flags/gin_file": "['a.gin']"}
    writer = writers.create_writer(str(tmp_path), wandb_project="smdiff-test", config=hparams,
                                   group="lr-sweep", tags=("learning_rate=3e-4", "seed=1"))
    writer.write_hparams(hparams)
    writer.write_scalars(1, {"train/loss": 1.5})
    writer.close()
    (log_file,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    expected = (b"lr-sweep", b"learning_rate=3e-4", b"gin/OptimizerConfig.learning_rate", b"flags/workdir")
    deadline = time.time() + 60  # wandb's service process may still be writing after finish() returns
    while not all(part in open(log_file, "rb").read() for part in expected) and time.time() < deadline:
        time.sleep(0.5)
    logged = open(log_file, "rb").read()
    assert all(part in logged for part in expected), [part for part in expected if part not in logged]
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert records[0] == {"hparams": hparams}


def test_the_log_names_the_hparams_count_not_the_whole_config(tmp_path, caplog):
    writer = writers.create_writer(str(tmp_path))
    # The absl logger's own level: a library imported by an earlier test in this process may have raised it.
    with caplog.at_level("INFO", logger="absl"):
        writer.write_hparams({"gin/train.seed": "1", "gin/melody_vae.MelodyVAEConfig.decoder_sizes": "(32, 32)"})
    writer.close()
    logged = [record.getMessage() for record in caplog.records if "Hyperparameters" in record.getMessage()]
    assert logged == ["[Hyperparameters] 2 values (TensorBoard hparams, metrics.jsonl)"]
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["hparams"]["gin/train.seed"] == "1"
