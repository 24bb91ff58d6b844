"""Configuration by environment: a wrong value stops a process at start, naming the variable; docs/configuration.md
documents every variable."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import Settings
from tests.helpers import ROOT

MNIST_SERVICE = str(Path(sys.executable).with_name("mnist-service"))  # the console script, beside this Python


@pytest.mark.parametrize(
    "command, variable, value",
    [
        ([MNIST_SERVICE, "api"], "MNIST_PORT", "abc"),
        ([MNIST_SERVICE, "api"], "MNIST_LOG_LEVEL", "loud"),
        ([sys.executable, "-m", "worker"], "MNIST_HEARTBEAT_S", "-1"),
    ],
)
def test_a_wrong_value_stops_the_process_at_start_naming_the_variable(command, variable, value):
    env = {**os.environ, "MNIST_REDIS_URL": "redis://127.0.0.1:1/0", variable: value}
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"{variable}: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_log_level_takes_any_case(monkeypatch):
    monkeypatch.setenv("MNIST_LOG_LEVEL", "debug")
    assert Settings().log_level == "DEBUG"


def test_the_configuration_page_documents_every_variable():
    """Every Settings field has a row in docs/configuration.md's table (named in its first column)."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    first_cells = [line.split("|")[1] for line in page.splitlines() if line.startswith("| `MNIST_")]
    documented = {name for cell in first_cells for name in re.findall(r"`(MNIST_\w+)`", cell)}
    missing = {Settings.env_name(field) for field in Settings.model_fields} - documented
    assert not missing, f"not in docs/configuration.md's table: {sorted(missing)}"
