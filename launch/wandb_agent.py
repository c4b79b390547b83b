#!/usr/bin/env python3
"""The command a `wandb agent` runs for each trial of a W&B sweep: `smdiff train` with the trial's
parameters as gin bindings, in its own workdir, logging into the W&B run the agent created.

    wandb sweep launch/wandb_sweep.yaml               # prints the sweep id
    wandb agent ENTITY/PROJECT/SWEEP_ID               # one agent per GPU (CUDA_VISIBLE_DEVICES=i)

W&B calls `launch/wandb_agent.py --root=DIR [smdiff train flags] --<binding>=<value> ...` (see the
YAML): every `--name=value` that is not a train flag is the gin binding `name = value` (the value a gin
literal, e.g. 0.0003 or 'adam'). The trial trains in DIR/<W&B run id>, binds train.wandb_project /
wandb_group / wandb_tags to the agent's project, the sweep id and the bindings, and writes the run id
to the workdir so that `smdiff train` logs into the agent's run (and a rerun resumes it). DRY_RUN=1
prints the command instead of running it.
"""
import os
import shlex
import sys

TRAIN_FLAGS = ("--gin_file=", "--gin_bindings=", "--allow_config_change")


def train_command(argv: list[str], environ: dict[str, str]) -> tuple[str, list[str]]:
    """(workdir, the `smdiff train` command) of one trial."""
    root = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--root=")), None)
    if root is None:
        raise SystemExit("wandb_agent.py: --root=DIR is required (the sweep's workdirs go under it)")
    for name in ("WANDB_RUN_ID", "WANDB_SWEEP_ID"):
        if name not in environ:
            raise SystemExit(f"wandb_agent.py: {name} is not set; run this through `wandb agent`")
    passed, bindings = [], []
    for arg in argv:
        if arg.startswith("--root="):
            continue
        if arg.startswith(TRAIN_FLAGS):
            passed.append(arg)
        elif arg.startswith("--") and "=" in arg:
            bindings.append(arg[2:].split("=", 1))
        else:
            raise SystemExit(f"wandb_agent.py: cannot read argument {arg!r} (expected --name=value)")
    workdir = f"{root.rstrip('/')}/{environ['WANDB_RUN_ID']}"
    tags = ", ".join(repr(f"{name.rsplit('.', 1)[-1]}={value}") for name, value in bindings)
    extra = [f"train.wandb_group = {environ['WANDB_SWEEP_ID']!r}", f"train.wandb_tags = ({tags},)"]
    if "WANDB_PROJECT" in environ:
        extra.append(f"train.wandb_project = {environ['WANDB_PROJECT']!r}")
    command = [sys.executable, "-m", "smdiff.cli", "train", *passed,
               *[f"--gin_bindings={name} = {value}" for name, value in bindings],
               *[f"--gin_bindings={binding}" for binding in extra], f"--workdir={workdir}"]
    return workdir, command


def main() -> None:
    workdir, command = train_command(sys.argv[1:], dict(os.environ))
    print("+", shlex.join(command), flush=True)
    if os.environ.get("DRY_RUN") == "1":
        return
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from smdiff.training.paths import run_path

    run_path(workdir).mkdir(parents=True, exist_ok=True)
    (run_path(workdir) / "wandb_run_id").write_text(os.environ["WANDB_RUN_ID"])  # join the agent's run
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
