"""The Docker stack's test runs only through `make test-docker`, which installs what it needs first
(tests/docker/setup.sh) and sets MNIST_TEST_DOCKER=1; the default `make test` does not collect it."""

import os

from tests.docker.figures import FIGURES

if os.environ.get("MNIST_TEST_DOCKER") != "1":
    collect_ignore_glob = ["test_*.py"]


def pytest_terminal_summary(terminalreporter):
    """What the stack test measured, above pytest's summary line (also in test-artifacts/docker-stack.json)."""
    if FIGURES:
        terminalreporter.section("docker stack: figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
