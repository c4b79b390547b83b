"""launch/ and scripts/cluster/: every script is shellcheck-clean, and a launcher's dry run prints the
command it would run, for every job. (`tests/test_cluster_slurm.py` submits slurm.sh to a real SLURM.)"""
import glob
import os
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELLCHECK = os.path.join(os.path.dirname(sys.executable), "shellcheck")
SCRIPTS = sorted(glob.glob(os.path.join(REPO, "launch", "*.sh")) + glob.glob(os.path.join(REPO, "scripts", "cluster", "*.sh")))
TRAIN_FLAGS = ["train", "--", "--gin_file=gin/runs/cpu_smoke.gin", "--gin_bindings=train.task = @Task()", "--workdir=/tmp/run a"]


def _launch(script, *args, dry_run_env=False):
    env = {**os.environ, "PYTHON": "/opt/py/bin/python"}
    if dry_run_env:
        env["DRY_RUN"] = "1"
    result = subprocess.run([os.path.join(REPO, "launch", script), *args], env=env, capture_output=True,
                            text=True, timeout=60)
    return result.returncode, result.stdout, result.stderr


def _printed_command(stdout):
    """The last `+ cmd ...` line, split back into arguments."""
    line = [line for line in stdout.splitlines() if line.startswith("+ ")][-1]
    return shlex.split(line[2:])


def test_all_launchers_exist():
    names = {os.path.basename(path) for path in SCRIPTS}
    assert {"local.sh", "multi_gpu.sh", "slurm.sh", "tpu_pod.sh", "sweep.sh", "lib.sh", "start_slurm.sh"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_shellcheck_clean(path):
    result = subprocess.run([SHELLCHECK, "-x", path], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_local_dry_run():
    code, stdout, _ = _launch("local.sh", "--dry_run", *TRAIN_FLAGS)
    assert code == 0
    assert _printed_command(stdout) == ["/opt/py/bin/python", "-m", "smdiff.cli", "train", *TRAIN_FLAGS[2:]]


@pytest.mark.parametrize("job", ["train", "sample", "evaluate", "reverse-process", "pianoroll-eval", "build"])
def test_every_job_launches(job):
    code, stdout, _ = _launch("local.sh", "--dry_run", job, "--", "--workdir=/tmp/x")
    assert code == 0 and _printed_command(stdout) == ["/opt/py/bin/python", "-m", "smdiff.cli", job, "--workdir=/tmp/x"]


def test_local_processes_join_one_coordinator():
    code, stdout, _ = _launch("local.sh", "--processes=3", "--dry_run", *TRAIN_FLAGS)
    assert code == 0
    commands = [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]
    assert sorted(command[4] for command in commands) == [f"SMDIFF_PROCESS_ID={index}" for index in range(3)]
    assert len({command[2] for command in commands}) == 1 and commands[0][2].startswith("JAX_COORDINATOR_ADDRESS=localhost:")
    assert all(command[1] == "SMDIFF_DISTRIBUTED=1" and command[3] == "SMDIFF_NUM_PROCESSES=3" for command in commands)


def test_multi_gpu_dry_run_via_environment():
    code, stdout, _ = _launch("multi_gpu.sh", "--gpus=0,1", *TRAIN_FLAGS, dry_run_env=True)
    assert code == 0
    assert _printed_command(stdout)[:5] == ["env", "JAX_PLATFORMS=cuda", "CUDA_VISIBLE_DEVICES=0,1",
                                          "SMDIFF_EXPECTED_DEVICES=2", "/opt/py/bin/python"]


def test_slurm_dry_run_prints_the_job_script():
    """One task per GPU (jax's SLURM detection gives each process the GPU numbered SLURM_LOCALID)."""
    code, stdout, _ = _launch("slurm.sh", "--nodes=2", "--gpus_per_node=4", "--cpus_per_task=6", "--time=1:00:00",
                              "--sbatch_arg=--wait", "--dry_run", *TRAIN_FLAGS)
    assert code == 0
    lines = stdout.splitlines()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --signal=B:TERM@120", "#SBATCH --requeue",
                 "#SBATCH --time=1:00:00", "export SMDIFF_DISTRIBUTED=1", "export SMDIFF_EXPECTED_DEVICES=8",
                 "export JAX_COORDINATOR_PORT", '  scontrol requeue "$SLURM_JOB_ID"'):
        assert line in lines, line
    assert not any("12345" in line for line in lines)
    srun_line = next(line for line in lines if line.startswith("srun "))
    assert shlex.split(srun_line)[2:-1] == ["/opt/py/bin/python", "-m", "smdiff.cli", "train", *TRAIN_FLAGS[2:]]
    assert _printed_command(stdout) == ["sbatch", "--wait"]


def test_slurm_single_process_jobs_get_one_task_with_every_gpu():
    code, stdout, _ = _launch("slurm.sh", "--nodes=1", "--gpus_per_node=8", "--dry_run", "evaluate", "--", "--workdir=x")
    lines = stdout.splitlines()
    assert code == 0 and "#SBATCH --ntasks-per-node=1" in lines and "#SBATCH --gpus-per-node=8" in lines
    assert "export SMDIFF_DISTRIBUTED=1" not in lines and "export SMDIFF_EXPECTED_DEVICES=8" in lines
    code, _, stderr = _launch("slurm.sh", "--nodes=2", "--dry_run", "evaluate", "--", "--workdir=x")
    assert code == 2 and "one process on one node" in stderr


@pytest.mark.parametrize("job", ["sample", "pianoroll-eval", "reverse-process"])
def test_sampling_jobs_run_as_one_process_per_device_group_everywhere(job):
    """The sampling jobs share their chunks between processes, like train shares its batches."""
    code, stdout, _ = _launch("local.sh", "--processes=2", "--dry_run", job, "--", "--output_dir=/tmp/x")
    commands = [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]
    assert code == 0 and len(commands) == 2 and all(command[1] == "SMDIFF_DISTRIBUTED=1" for command in commands)
    assert all(command[-2:] == [job, "--output_dir=/tmp/x"] for command in commands)
    code, stdout, _ = _launch("slurm.sh", "--nodes=2", "--gpus_per_node=4", "--dry_run", job, "--", "--output_dir=x")
    lines = stdout.splitlines()
    assert code == 0 and "#SBATCH --ntasks-per-node=4" in lines and "export SMDIFF_DISTRIBUTED=1" in lines
    assert "export SMDIFF_EXPECTED_DEVICES=8" in lines
    code, stdout, _ = _launch("tpu_pod.sh", "--tpu=pod", "--zone=z", "--dry_run", job, "--", "--output_dir=gs://b/x")
    command = _printed_command(stdout)
    assert code == 0 and "--worker=all" in command
    assert "SMDIFF_DISTRIBUTED=1" in shlex.split(next(a for a in command if a.startswith("--command=")))


def test_tpu_pod_dry_run_runs_on_all_workers():
    code, stdout, _ = _launch("tpu_pod.sh", "--tpu=my-pod", "--zone=us-central2-b", "--dry_run", *TRAIN_FLAGS)
    assert code == 0
    command = _printed_command(stdout)
    assert command[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-pod"]
    assert "--worker=all" in command and "--zone=us-central2-b" in command
    remote = shlex.split(next(arg for arg in command if arg.startswith("--command="))[len("--command="):])
    assert remote[:3] == ["cd", "smdiff", "&&"] and remote[3] == "SMDIFF_DISTRIBUTED=1"
    assert remote[4:] == ["/opt/py/bin/python", "-m", "smdiff.cli", "train", *TRAIN_FLAGS[2:]]


def _sweep(*options):
    code, stdout, stderr = _launch("sweep.sh", "--root=/tmp/sweep", "--grid=OptimizerConfig.learning_rate=1e-3,3e-4",
                                   "--grid=train.seed=0,1", *options, "--dry_run", "--",
                                   "--gin_file=gin/runs/cpu_smoke.gin")
    assert code == 0, stderr
    return stdout


def test_sweep_dry_run_runs_every_point_in_its_own_workdir_with_group_and_tags():
    commands = [shlex.split(line[2:]) for line in _sweep().splitlines() if line.startswith("+ ")]
    assert len(commands) == 4 and all(command[3:5] == ["smdiff.cli", "train"] for command in commands)
    workdirs = sorted(arg.split("=", 1)[1] for command in commands for arg in command if arg.startswith("--workdir="))
    assert workdirs == ["/tmp/sweep/learning_rate-1e-3_seed-0", "/tmp/sweep/learning_rate-1e-3_seed-1",
                        "/tmp/sweep/learning_rate-3e-4_seed-0", "/tmp/sweep/learning_rate-3e-4_seed-1"]
    last = next(command for command in commands if "--workdir=/tmp/sweep/learning_rate-3e-4_seed-1" in command)
    assert "--gin_bindings=OptimizerConfig.learning_rate=3e-4" in last and "--gin_bindings=train.seed=1" in last
    assert "--gin_bindings=train.wandb_group = 'sweep'" in last
    assert "--gin_bindings=train.wandb_tags = ('learning_rate=3e-4', 'seed=1',)" in last


def test_sweep_packs_one_trial_per_gpu():
    commands = [shlex.split(line[2:]) for line in _sweep("--gpus=4,5").splitlines() if line.startswith("+ ")]
    by_gpu = {}
    for command in commands:
        assert command[0] == "env" and "SMDIFF_EXPECTED_DEVICES=1" in command
        by_gpu.setdefault(command[1], []).append(next(a for a in command if a.startswith("--workdir=")))
    assert sorted(by_gpu) == ["CUDA_VISIBLE_DEVICES=4", "CUDA_VISIBLE_DEVICES=5"]
    assert [len(workdirs) for workdirs in by_gpu.values()] == [2, 2]
    assert len({w for workdirs in by_gpu.values() for w in workdirs}) == 4


def test_sweep_as_a_slurm_array_has_one_task_per_trial():
    stdout = _sweep("--slurm_array", "--time=2:00:00")
    lines = stdout.splitlines()
    assert "#SBATCH --array=0-3" in lines and "#SBATCH --gpus-per-task=1" in lines and "#SBATCH --time=2:00:00" in lines
    trials = lines[lines.index("mapfile -t commands <<'TRIALS'") + 1:lines.index("TRIALS")]
    assert len(trials) == 4 and all(shlex.split(trial)[1:4] == ["-m", "smdiff.cli", "train"] for trial in trials)
    assert _printed_command(stdout) == ["sbatch"]


@pytest.mark.parametrize("script,args", [("slurm.sh", ["--dry_run", "train", "--", "--workdir=x"]),
                                         ("tpu_pod.sh", ["--tpu=x", "--dry_run", "train", "--", "--workdir=x"]),
                                         ("sweep.sh", ["--root=/tmp/s", "--dry_run", "train", "--", "--workdir=x"]),
                                         ("local.sh", ["--bogus", "train", "--", "--workdir=x"]),
                                         ("local.sh", ["--dry_run", "--", "--workdir=x"]),
                                         ("local.sh", ["--dry_run", "fly", "--", "--workdir=x"]),
                                         ("local.sh", ["--processes=2", "--dry_run", "build", "--", "--x"]),
                                         ("local.sh", ["--dry_run", "train"])])
def test_missing_or_bad_options_are_clear_errors(script, args):
    code, stdout, stderr = _launch(script, *args)
    assert code == 2 and "usage" in stderr and not stdout.strip()


def test_wandb_agent_entry_turns_sweep_parameters_into_bindings():
    """launch/wandb_agent.py as `wandb agent` runs it (the YAML's command, W&B's environment)."""
    import yaml

    sweep = yaml.safe_load(open(os.path.join(REPO, "launch", "wandb_sweep.yaml")))
    assert sweep["program"] == "launch/wandb_agent.py" and os.access(os.path.join(REPO, sweep["program"]), os.X_OK)
    args = [arg for arg in sweep["command"][3:] if arg != "${args}"] + [
        f"--{name}={spec['values'][-1]}" for name, spec in sweep["parameters"].items()]
    env = {**os.environ, "DRY_RUN": "1", "WANDB_RUN_ID": "abc123", "WANDB_SWEEP_ID": "sw42", "WANDB_PROJECT": "smdiff"}
    result = subprocess.run([sys.executable, os.path.join(REPO, sweep["program"]), *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    command = _printed_command(result.stdout)
    assert command[1:4] == ["-m", "smdiff.cli", "train"]
    assert "--gin_file=gin/experiments/melody_vae_embedded_cpu.gin" in command
    for binding in ("OptimizerConfig.learning_rate = 0.0003", "train.seed = 1", "train.wandb_group = 'sw42'",
                    "train.wandb_tags = ('learning_rate=0.0003', 'seed=1',)", "train.wandb_project = 'smdiff'"):
        assert f"--gin_bindings={binding}" in command, binding
    assert command[-1] == "--workdir=/tmp/smdiff-sweeps/abc123"
    outside_an_agent = {name: value for name, value in env.items() if name != "WANDB_RUN_ID"}
    missing = subprocess.run([sys.executable, os.path.join(REPO, sweep["program"]), "--root=/tmp/x"],
                             env=outside_an_agent, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "WANDB_RUN_ID is not set" in missing.stderr
