"""Metric writers: logging + TensorBoard + JSON lines in the workdir, and W&B on request (process 0 only).

All are clu `MetricWriter`s combined in one `MultiWriter`, so the loop writes each value once. The
workdir may be a URL (gs://...): its files go through etils.epath like checkpoints do. TensorBoard's
own writer would reach a bucket through TensorFlow's filesystem instead, so for a URL workdir its event
files are written to a local folder and copied to `<workdir>/tensorboard` at every flush.
"""
import json
import os
import shutil
import tempfile
import uuid
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging
from clu import metric_writers
from etils import epath

from smdiff.training.paths import is_url, run_path


class JsonLinesWriter(metric_writers.MetricWriter):
    """Appends one JSON object per write to a file: {"step": s, "name": value, ...}.

    Holds what is readable as text (scalars, texts, hparams); arrays such as images, audio, videos and
    histograms belong to TensorBoard and W&B, so this writer leaves them out on purpose.
    """

    def __init__(self, path: str):
        self._path = run_path(path)
        if is_url(path):  # object stores cannot append: keep the text, rewrite it whole at each flush
            self._file = None
            self._text = self._path.read_text() if self._path.exists() else ""
        else:
            self._file = self._path.open("a", encoding="utf-8")

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        if self._file is None:
            self._text += line
        else:
            self._file.write(line)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]):
        self._write({"step": int(step), **{name: float(np.asarray(v)) for name, v in scalars.items()}})

    def write_texts(self, step: int, texts: Mapping[str, str]):
        self._write({"step": int(step), **{name: str(text) for name, text in texts.items()}})

    def write_hparams(self, hparams: Mapping[str, Any]):
        self._write({"hparams": {name: _json_value(v) for name, v in hparams.items()}})

    def write_summaries(self, step, values, metadata=None):
        pass  # raw tensor summaries are TensorBoard-only

    def write_images(self, step, images):
        pass  # see class docstring

    def write_videos(self, step, videos):
        pass  # see class docstring

    def write_audios(self, step, audios, *, sample_rate):
        pass  # see class docstring

    def write_histograms(self, step, arrays, num_buckets=None):
        pass  # see class docstring

    def flush(self):
        if self._file is None:
            self._path.write_text(self._text)
        else:
            self._file.flush()

    def close(self):
        self.flush()
        if self._file is not None:
            self._file.close()


class MirroredSummaryWriter(metric_writers.MetricWriter):
    """TensorBoard events written to a local folder and copied to `target` (a URL) at every flush."""

    def __init__(self, target: str):
        self._target = run_path(target)
        self._local = tempfile.mkdtemp(prefix="smdiff-tensorboard-")
        self._writer = metric_writers.SummaryWriter(self._local)

    def write_scalars(self, step, scalars):
        self._writer.write_scalars(step, scalars)

    def write_images(self, step, images):
        self._writer.write_images(step, images)

    def write_videos(self, step, videos):
        self._writer.write_videos(step, videos)

    def write_audios(self, step, audios, *, sample_rate):
        self._writer.write_audios(step, audios, sample_rate=sample_rate)

    def write_texts(self, step, texts):
        self._writer.write_texts(step, texts)

    def write_histograms(self, step, arrays, num_buckets=None):
        self._writer.write_histograms(step, arrays, num_buckets)

    def write_hparams(self, hparams):
        self._writer.write_hparams(hparams)

    def write_summaries(self, step, values, metadata=None):
        self._writer.write_summaries(step, values, metadata)

    def flush(self):
        self._writer.flush()
        self._target.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(self._local):
            (self._target / name).write_bytes(epath.Path(self._local, name).read_bytes())

    def close(self):
        self._writer.close()
        self.flush()
        shutil.rmtree(self._local, ignore_errors=True)


class LoggingWriter(metric_writers.LoggingWriter):
    """clu's logging writer, except that hparams (a run's whole gin config, at every start) are logged as
    one line naming their count: the config itself is in the workdir (config.gin, config_history/), in
    TensorBoard, metrics.jsonl and W&B."""

    def write_hparams(self, hparams: Mapping[str, Any]):
        logging.info("[Hyperparameters] %d values (TensorBoard hparams, metrics.jsonl)", len(hparams))


def _json_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


class WandbWriter(metric_writers.MetricWriter):
    """Weights & Biases run; `WANDB_MODE=offline` writes it under `<workdir>/wandb` without network.

    The run id is kept in `<workdir>/wandb_run_id`, so a resumed training run continues the same W&B run.
    """

    def __init__(self, workdir: str, project: str, name: str | None = None, config: Mapping[str, Any] | None = None,
                 group: str | None = None, tags: tuple[str, ...] = ()):
        import wandb  # only runs that ask for W&B import it

        self._wandb = wandb
        id_path = run_path(workdir) / "wandb_run_id"
        if id_path.exists():
            run_id = id_path.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:12]  # W&B ids: lower-case letters and digits
            id_path.write_text(run_id)
        self.run_id = run_id
        # W&B keeps its own files in a local folder (it uploads them itself).
        local_dir = tempfile.mkdtemp(prefix="smdiff-wandb-") if is_url(workdir) else workdir
        self._run = wandb.init(project=project, name=name or run_path(workdir).name,
                               dir=local_dir, id=run_id, config=dict(config or {}), resume="allow",
                               group=group, tags=list(tags) or None)

    def write_scalars(self, step, scalars):
        self._run.log({name: float(np.asarray(v)) for name, v in scalars.items()}, step=int(step))

    def write_texts(self, step, texts):
        self._run.log({name: self._wandb.Html(f"<pre>{text}</pre>") for name, text in texts.items()}, step=int(step))

    def write_images(self, step, images):
        self._run.log({name: [self._wandb.Image(np.asarray(image)) for image in np.asarray(batch).reshape(
            (-1,) + np.asarray(batch).shape[-3:])] for name, batch in images.items()}, step=int(step))

    def write_videos(self, step, videos):
        # wandb wants [T, C, H, W]; clu gives [(N,) T, H, W, C].
        self._run.log({name: [self._wandb.Video(np.moveaxis(video, -1, 1)) for video in np.asarray(batch).reshape(
            (-1,) + np.asarray(batch).shape[-4:])] for name, batch in videos.items()}, step=int(step))

    def write_audios(self, step, audios, *, sample_rate):
        self._run.log({name: [self._wandb.Audio(np.asarray(clip), sample_rate=sample_rate) for clip in np.asarray(batch)]
                       for name, batch in audios.items()}, step=int(step))

    def write_histograms(self, step, arrays, num_buckets=None):
        num_buckets = num_buckets or {}
        self._run.log({name: self._wandb.Histogram(np.asarray(values), num_bins=num_buckets.get(name, 64))
                       for name, values in arrays.items()}, step=int(step))

    def write_summaries(self, step, values, metadata=None):
        self.write_scalars(step, {name: v for name, v in values.items() if np.asarray(v).ndim == 0})

    def write_hparams(self, hparams):
        self._run.config.update(dict(hparams), allow_val_change=True)

    def flush(self):
        pass  # wandb streams in the background

    def close(self):
        self._run.finish()


def create_writer(workdir: str, wandb_project: str | None = None, config: Mapping[str, Any] | None = None,
                  group: str | None = None, tags: tuple[str, ...] = ()) -> metric_writers.MetricWriter:
    """Process 0: logging, TensorBoard (`<workdir>/tensorboard`), `<workdir>/metrics.jsonl` and, when
    `wandb_project` is set, W&B (its run config = `config`, in W&B group `group` with `tags`, e.g. a
    sweep and its point's bindings). Other processes only log."""
    writers: list[metric_writers.MetricWriter] = [LoggingWriter()]
    if jax.process_index() == 0:
        tensorboard = str(run_path(workdir) / "tensorboard")
        writers.append(MirroredSummaryWriter(tensorboard) if is_url(workdir)
                       else metric_writers.SummaryWriter(tensorboard))
        writers.append(JsonLinesWriter(str(run_path(workdir) / "metrics.jsonl")))
        if wandb_project:
            writers.append(WandbWriter(workdir, wandb_project, config=config, group=group, tags=tags))
    return metric_writers.MultiWriter(writers)
