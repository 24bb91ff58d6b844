"""`mnist-service run` tells the truth: when a child cannot start or dies, it stops the others and exits non-zero
with one clear line on stderr (no traceback); 0 only after Ctrl+C or SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, Process, free_port, start_process, wait_until_healthy
from tests.test_run_command import alive, children_of


@pytest.fixture(autouse=True)
def _embedded_redis(monkeypatch):
    monkeypatch.delenv("MNIST_REDIS_URL", raising=False)  # no URL: run starts its own Redis


def run_env(mnist_data_dir, tmp_path) -> dict[str, str]:
    return {
        "MNIST_DATA_DIR": str(mnist_data_dir),
        "MNIST_STATE_DIR": str(tmp_path / "state"),
        "MNIST_MODEL_DIR": str(tmp_path / "models"),
    }


def start_run(mnist_data_dir, tmp_path) -> tuple[Process, list[int]]:
    """`mnist-service run` with no worker (Redis and the API are quick to start), healthy; it and its children."""
    port = free_port()
    args = [sys.executable, "-m", "service", "run", "--workers", "0", "--port", str(port)]
    command = start_process("run", args, run_env(mnist_data_dir, tmp_path), tmp_path)
    wait_until_healthy(f"http://127.0.0.1:{port}", [command])
    return command, children_of(command.popen.pid)


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "service", "run", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    done.seconds = time.monotonic() - started
    return done


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def test_a_port_in_use_is_one_clear_line_and_a_failure(mnist_data_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(["--port", str(port)], run_env(mnist_data_dir, tmp_path))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert last_line(done.stderr) == f"error: the API cannot start: port {port} is in use: set MNIST_PORT or --port"
    assert done.seconds < 30
    assert not (tmp_path / "state").exists()  # nothing was started


def test_redis_failing_to_start_is_one_clear_line_and_a_failure(mnist_data_dir, tmp_path):
    (tmp_path / "state").write_text("a file where the state directory should be")
    done = run(["--port", str(free_port())], run_env(mnist_data_dir, tmp_path))
    assert done.returncode == 1, (done.stdout, done.stderr)
    line = last_line(done.stderr)
    assert line.startswith("error: the embedded Redis did not start: "), line
    assert str(tmp_path / "state") in line


def test_a_child_that_dies_stops_the_others_and_the_command_fails(mnist_data_dir, tmp_path):
    command, started = start_run(mnist_data_dir, tmp_path)
    assert len(started) == 2, command.output()  # redis-server and the API
    (api,) = [pid for pid in started if b"service" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(api, signal.SIGKILL)
    assert command.popen.wait(timeout=60) == 1, command.output()
    assert last_line(command.output()) == "error: the API exited (killed by SIGKILL); the other processes were stopped"
    assert not [pid for pid in started if alive(pid)], command.output()


def test_sigterm_is_still_a_clean_exit(mnist_data_dir, tmp_path):
    command, started = start_run(mnist_data_dir, tmp_path)
    command.popen.send_signal(signal.SIGTERM)
    assert command.popen.wait(timeout=60) == 0, command.output()
    assert "error:" not in command.output()
    assert not [pid for pid in started if alive(pid)], command.output()
