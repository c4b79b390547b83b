"""Metric writers: logging + TensorBoard + JSON lines in the workdir, and W&B on request (process 0 only).

All are clu `MetricWriter`s combined in one `MultiWriter`, so the loop writes each value once.
"""
import json
import os
import uuid
from typing import Any, Mapping

import jax
import numpy as np
from clu import metric_writers


class JsonLinesWriter(metric_writers.MetricWriter):
    """Appends one JSON object per write to a file: {"step": s, "name": value, ...}.

    Holds what is readable as text (scalars, texts, hparams); arrays such as images, audio, videos and
    histograms belong to TensorBoard and W&B, so this writer leaves them out on purpose.
    """

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")

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
        self._file.flush()

    def close(self):
        self._file.close()


def _json_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


class WandbWriter(metric_writers.MetricWriter):
    """Weights & Biases run; `WANDB_MODE=offline` writes it under `<workdir>/wandb` without network.

    The run id is kept in `<workdir>/wandb_run_id`, so a resumed training run continues the same W&B run.
    """

    def __init__(self, workdir: str, project: str, name: str | None = None, config: Mapping[str, Any] | None = None):
        import wandb  # only runs that ask for W&B import it

        self._wandb = wandb
        id_path = os.path.join(workdir, "wandb_run_id")
        if os.path.exists(id_path):
            with open(id_path, encoding="utf-8") as file:
                run_id = file.read().strip()
        else:
            run_id = uuid.uuid4().hex[:12]  # W&B ids: lower-case letters and digits
            with open(id_path, "w", encoding="utf-8") as file:
                file.write(run_id)
        self.run_id = run_id
        self._run = wandb.init(project=project, name=name or os.path.basename(os.path.abspath(workdir)),
                               dir=workdir, id=run_id, config=dict(config or {}), resume="allow")

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


def create_writer(workdir: str, wandb_project: str | None = None,
                  config: Mapping[str, Any] | None = None) -> metric_writers.MetricWriter:
    """Process 0: logging, TensorBoard (`<workdir>/tensorboard`), `<workdir>/metrics.jsonl` and, when
    `wandb_project` is set, W&B. Other processes only log."""
    writers: list[metric_writers.MetricWriter] = [metric_writers.LoggingWriter()]
    if jax.process_index() == 0:
        writers.append(metric_writers.SummaryWriter(os.path.join(workdir, "tensorboard")))
        writers.append(JsonLinesWriter(os.path.join(workdir, "metrics.jsonl")))
        if wandb_project:
            writers.append(WandbWriter(workdir, wandb_project, config=config))
    return metric_writers.MultiWriter(writers)
