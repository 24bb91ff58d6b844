"""The direction of imports that the layout promises, checked with import-linter (contracts in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_imports_follow_the_layers_and_have_no_cycles():
    lint = subprocess.run(
        [Path(sys.executable).parent / "lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 broken" in lint.stdout
