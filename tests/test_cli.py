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
