"""What a run was started with, kept in its workdir, and the check that a restart is the same run.

Every start appends its whole gin config to `config_history/` (`0000.gin`, `0001.gin`, ...; never
overwritten), and `config_fingerprint.json`: every binding except the few that may change when a run
is resumed (its length, logging and checkpoint periods). A restart whose bindings differ from the
fingerprint stops with an error naming them, unless it is explicitly allowed (then the new bindings
become the fingerprint).

Bindings are read from gin's own text form (`gin.config_str()`), so this module needs no gin import.
"""
import json
from typing import Any

from smdiff.training.paths import run_path

HISTORY_DIR = "config_history"
FINGERPRINT_FILE = "config_fingerprint.json"

# Bindings a resumed run may change: how long it runs, and how it logs, evaluates and checkpoints.
RESUMABLE_BINDINGS = frozenset({
    "train.num_train_steps", "train.log_every_steps", "train.eval_every_steps", "train.num_eval_batches",
    "train.checkpoint_every_steps", "train.keep_checkpoints", "train.keep_every_steps",
    "train.async_checkpointing", "train.wandb_project", "train.wandb_group", "train.wandb_tags",
    "train.restore_step",
})


class ConfigChangedError(ValueError):
    """A restart into an existing workdir with bindings that change what is being trained."""


def parse_bindings(config_text: str) -> dict[str, str]:
    """{'scope/configurable.parameter' or 'MACRO': value text} of a gin config string. Continuation
    lines (after a trailing backslash, indented) belong to the binding above; comments, imports and
    includes are skipped."""
    bindings: dict[str, str] = {}
    name = None
    for line in config_text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace() and name is not None:
            bindings[name] = f"{bindings[name]} {stripped.removesuffix(chr(92)).strip()}".strip()
        elif " = " in line and not stripped.startswith(("import ", "include ")):
            name, value = (part.strip() for part in line.split(" = ", 1))
            bindings[name] = value.removesuffix(chr(92)).strip()  # gin continues long values after a backslash
        else:
            name = None
    return bindings


def fixed_bindings(bindings: dict[str, str]) -> dict[str, str]:
    """The bindings that must not change across restarts of one run."""
    return {name: value for name, value in bindings.items() if name not in RESUMABLE_BINDINGS}


def differences(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    """'name: saved -> current' for every binding added, removed or changed."""
    missing = "(unset)"
    return [f"{name}: {saved.get(name, missing)} -> {current.get(name, missing)}"
            for name in sorted(saved.keys() | current.keys()) if saved.get(name) != current.get(name)]


def check_restart(workdir: str, config_text: str, allow_changes: bool = False) -> list[str]:
    """Compares this start's fixed bindings with the workdir's fingerprint (if any); returns the
    differences (empty on a first start or an identical restart).

    Raises:
      ConfigChangedError: bindings differ and `allow_changes` is False.
    """
    fingerprint = run_path(workdir) / FINGERPRINT_FILE
    if not fingerprint.exists():
        return []
    changed = differences(json.loads(fingerprint.read_text()), fixed_bindings(parse_bindings(config_text)))
    if changed and not allow_changes:
        raise ConfigChangedError(
            f"{workdir} holds a run started with other settings; resuming it with these would mix two "
            f"experiments. Changed bindings:\n  " + "\n  ".join(changed) +
            f"\nUse a new --workdir, or allow the change explicitly (--allow_config_change); every start's "
            f"config is kept in {HISTORY_DIR}/.")
    return changed


def record_start(workdir: str, config_text: str) -> str:
    """Appends this start's config to the history and writes its fingerprint (after `check_restart`:
    the same as before, or an explicitly allowed change, which later restarts are compared with);
    returns the history file's path. Process 0 only should call this."""
    directory = run_path(workdir) / HISTORY_DIR
    directory.mkdir(parents=True, exist_ok=True)
    # (In a bucket a folder exists only once it holds an object.)
    number = len([path for path in directory.iterdir() if path.name.endswith(".gin")]) if directory.exists() else 0
    path = directory / f"{number:04d}.gin"
    path.write_text(config_text)
    fingerprint = run_path(workdir) / FINGERPRINT_FILE
    fingerprint.write_text(json.dumps(fixed_bindings(parse_bindings(config_text)), indent=1, sort_keys=True))
    return str(path)


def hparams(config_text: str, job_flags: dict[str, Any]) -> dict[str, Any]:
    """A run's hyper-parameters for W&B's run config and TensorBoard's hparams: every gin binding
    (`gin/<name>`, its value as text) and the job's flags (`flags/<name>`)."""
    return {**{f"gin/{name}": value for name, value in parse_bindings(config_text).items()},
            **{f"flags/{name}": value if isinstance(value, (bool, int, float, str)) else str(value)
               for name, value in job_flags.items()}}
