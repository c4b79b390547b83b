"""The train job: any smdiff Task through the one train loop, configured by gin.

    smdiff train --gin_file=gin/experiments/<run>.gin --workdir=/tmp/run [--gin_bindings='train.num_train_steps=10']

The workdir (a local folder or a gs:// URL) receives `config.gin` (every binding, at start),
`config_history/` (every start's config) and `config_fingerprint.json` (see training/run_config.py),
`topology.json` (processes and devices), `operative_config.gin` (the bindings the run used, at the
end), `checkpoints/`, `metrics.jsonl` and `tensorboard/`. Rerunning the same command on the same
workdir resumes from the latest checkpoint on the same trajectory, on any number of processes; a
restart with other bindings stops unless `--allow_config_change`.

Multi-process runs (SLURM, TPU pods) call `jax.distributed.initialize()` first; `main` does that when
the launcher sets `SMDIFF_DISTRIBUTED=1`, and writes the processes and devices to `topology.json`
(smdiff/training/topology.py, launch/).
"""
import os
from typing import Sequence

import gin
import jax
from absl import app, flags, logging
from jax.experimental import multihost_utils

from smdiff import configurables, jobflags, joblog
from smdiff.training import run_config, topology
from smdiff.training.loop_helpers import enable_compilation_cache
from smdiff.training.paths import run_path
from smdiff.training.workdir import CONFIG_FILE, OPERATIVE_CONFIG_FILE

# gin `include` lines name files relative to the repository root (gin/models/..., gin/runs/...).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = jobflags.namespace()
flags.DEFINE_multi_string("gin_file", [], "gin files, applied in order (repeatable)", flag_values=FLAGS)
flags.DEFINE_multi_string("gin_bindings", [], "extra gin bindings, applied after the files (repeatable)",
                          flag_values=FLAGS)
flags.DEFINE_string("workdir", None, "run directory; an existing one is resumed", flag_values=FLAGS)
flags.DEFINE_bool("allow_config_change", False,
                  "resume a workdir although its fixed gin bindings changed (see training/run_config.py)",
                  flag_values=FLAGS)


def main(argv: Sequence[str]) -> None:
    """Parse gin, check a restart against the workdir's config fingerprint, record the config
    (config.gin and config_history/), run the gin-configured `train`, write operative_config.gin."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected positional arguments {list(argv[1:])}; use --gin_file/--gin_bindings")
    workdir = FLAGS.workdir
    if not workdir:
        raise app.UsageError("--workdir is required")
    enable_compilation_cache()
    topology.start(workdir)  # jax.distributed from the launcher's environment; checks the device count
    joblog.setup(workdir, "train")
    gin.add_config_file_search_path(REPO_ROOT)
    gin.parse_config_files_and_bindings(FLAGS.gin_file, FLAGS.gin_bindings)
    config_text = gin.config_str()
    if changed := run_config.check_restart(workdir, config_text, FLAGS.allow_config_change):
        logging.warning("resuming %s with changed bindings (allowed):\n  %s", workdir, "\n  ".join(changed))
    if jax.process_count() > 1:  # every process has read the fingerprint before process 0 rewrites it
        multihost_utils.sync_global_devices("smdiff train: restart checked")
    if jax.process_index() == 0:
        run_config.record_start(workdir, config_text)
        (run_path(workdir) / CONFIG_FILE).write_text(config_text)
    try:
        result = configurables.train(workdir=workdir, hparams=run_config.hparams(config_text, {
            name: FLAGS[name].value for name in ("gin_file", "gin_bindings", "workdir", "allow_config_change")}))
        if jax.process_index() == 0:
            metrics = {**result.train_metrics, **result.eval_metrics}
            print(", ".join(f"{name} {value:.4g}" for name, value in metrics.items() if "per_sec" not in name))
    finally:
        if jax.process_index() == 0:
            (run_path(workdir) / OPERATIVE_CONFIG_FILE).write_text(gin.operative_config_str())
