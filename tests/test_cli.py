"""The `smdiff` console script's dispatch."""
import subprocess
import sys

import pytest

from smdiff import cli


def test_unknown_job_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["smdiff", "no-such-job"])
    assert exit_info.value.code == 2
    assert "unknown job 'no-such-job'" in capsys.readouterr().err


def test_help_lists_every_job():
    result = subprocess.run([sys.executable, "-m", "smdiff.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for job in cli.JOBS:
        assert job in result.stdout


def test_build_job_is_tfds_build():
    """`smdiff build` parses TFDS's own build flags (the `tfds` entry point needs apache_beam)."""
    result = subprocess.run([sys.executable, "-m", "smdiff.cli", "build", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--manual_dir" in result.stdout and "--max_examples_per_split" in result.stdout


@pytest.mark.parametrize("job,flag", [("train", "--gin_file"), ("sample", "--generator"), ("evaluate", "--samples_dir"),
                                      ("reverse-process", "--every")])
def test_job_help_lists_its_flags(job, flag):
    result = subprocess.run([sys.executable, "-m", "smdiff.cli", job, "--help"], capture_output=True, text=True)
    assert flag in result.stdout  # (absl's --help exits with status 1)
