"""launch/: every script is shellcheck-clean, and its dry run prints the command it would run."""
import glob
import os
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELLCHECK = os.path.join(os.path.dirname(sys.executable), "shellcheck")
SCRIPTS = sorted(glob.glob(os.path.join(REPO, "launch", "*.sh")))
TRAIN_FLAGS = ["--", "--gin_file=gin/runs/cpu_smoke.gin", "--gin_bindings=train.task = @Task()", "--workdir=/tmp/run a"]


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
    assert {"local.sh", "multi_gpu.sh", "slurm.sh", "tpu_pod.sh", "sweep.sh", "lib.sh"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_shellcheck_clean(path):
    result = subprocess.run([SHELLCHECK, "-x", path], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_local_dry_run():
    code, stdout, _ = _launch("local.sh", "--dry_run", *TRAIN_FLAGS)
    assert code == 0
    assert _printed_command(stdout) == ["/opt/py/bin/python", "-m", "smdiff.cli", "train", *TRAIN_FLAGS[1:]]


def test_multi_gpu_dry_run_via_environment():
    code, stdout, _ = _launch("multi_gpu.sh", "--gpus=0,1", *TRAIN_FLAGS, dry_run_env=True)
    assert code == 0
    assert _printed_command(stdout)[:4] == ["env", "JAX_PLATFORMS=cuda", "CUDA_VISIBLE_DEVICES=0,1", "/opt/py/bin/python"]


def test_slurm_dry_run_prints_the_job_script():
    code, stdout, _ = _launch("slurm.sh", "--nodes=2", "--gpus_per_node=4", "--time=1:00:00", "--dry_run", *TRAIN_FLAGS)
    assert code == 0
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --time=1:00:00", 'export JAX_COORDINATOR_ADDRESS="$coordinator:12345"',
                 "export SMDIFF_DISTRIBUTED=1"):
        assert line in stdout.splitlines(), line
    srun_line = next(line for line in stdout.splitlines() if line.startswith("srun "))
    assert shlex.split(srun_line)[2:] == ["/opt/py/bin/python", "-m", "smdiff.cli", "train", *TRAIN_FLAGS[1:]]
    assert _printed_command(stdout) == ["sbatch"]


def test_tpu_pod_dry_run_runs_on_all_workers():
    code, stdout, _ = _launch("tpu_pod.sh", "--tpu=my-pod", "--zone=us-central2-b", "--dry_run", *TRAIN_FLAGS)
    assert code == 0
    command = _printed_command(stdout)
    assert command[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-pod"]
    assert "--worker=all" in command and "--zone=us-central2-b" in command
    remote = shlex.split(next(arg for arg in command if arg.startswith("--command="))[len("--command="):])
    assert remote[:3] == ["cd", "smdiff", "&&"] and remote[3] == "SMDIFF_DISTRIBUTED=1"
    assert remote[4:] == ["/opt/py/bin/python", "-m", "smdiff.cli", "train", *TRAIN_FLAGS[1:]]


def test_sweep_dry_run_runs_every_point_in_its_own_workdir():
    code, stdout, _ = _launch("sweep.sh", "--root=/tmp/sweep", "--grid=OptimizerConfig.learning_rate=1e-3,3e-4",
                              "--grid=train.seed=0,1", "--dry_run", "--", "--gin_file=gin/runs/cpu_smoke.gin")
    assert code == 0
    commands = [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]
    assert len(commands) == 4
    workdirs = sorted(arg.split("=", 1)[1] for command in commands for arg in command if arg.startswith("--workdir="))
    assert workdirs == ["/tmp/sweep/learning_rate-1e-3_seed-0", "/tmp/sweep/learning_rate-1e-3_seed-1",
                        "/tmp/sweep/learning_rate-3e-4_seed-0", "/tmp/sweep/learning_rate-3e-4_seed-1"]
    assert "--gin_bindings=OptimizerConfig.learning_rate=3e-4" in commands[3]
    assert "--gin_bindings=train.seed=1" in commands[3]


@pytest.mark.parametrize("script,args", [("slurm.sh", ["--dry_run", "--", "--workdir=x"]),
                                         ("tpu_pod.sh", ["--tpu=x", "--dry_run", "--", "--workdir=x"]),
                                         ("sweep.sh", ["--root=/tmp/s", "--dry_run", "--", "--workdir=x"]),
                                         ("local.sh", ["--bogus", "--", "--workdir=x"]),
                                         ("local.sh", ["--dry_run"])])
def test_missing_or_bad_options_are_clear_errors(script, args):
    code, stdout, stderr = _launch(script, *args)
    assert code == 2 and "usage" in stderr and not stdout.strip()
