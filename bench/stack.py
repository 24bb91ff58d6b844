"""The whole service as a user runs it (``mnist-service run``: embedded Redis + API + one worker), for timing."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from service.schemas.jobs import ENDED


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> dict[str, int]:
    """The processes ``mnist-service run`` started, by role (redis, worker, api)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = stat.read_bytes().replace(b"\0", b" ").decode()
            ppid = int((stat.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == pid:
            role = "redis" if "redis-server" in command else "worker" if "-m worker" in command else "api"
            found[role] = int(stat.parent.name)
    return found


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory now and at its peak, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 600) -> dict:
    """Poll the job until it has ended (succeeded, failed or canceled); return it as the API shows it. (The
    benchmarks and the tests both wait with this.)"""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ENDED:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not end in {timeout} s: {job}")
        time.sleep(0.05)  # a client polling harder would take CPU from the worker it is timing


@contextmanager
def running_service(data_dir: Path, **env: str):
    """Yield (client, pids) for a warm service: a first tiny job has gone through."""
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--port", str(port)],
            env={
                **{k: v for k, v in os.environ.items() if k != "MNIST_REDIS_URL"},
                "MNIST_DATA_DIR": str(data_dir),
                "MNIST_STATE_DIR": f"{work}/state",
                "MNIST_MODEL_DIR": f"{work}/models",
                **env,
            },
            stdout=open(f"{work}/run.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(Path(f"{work}/run.log").read_text()) from None
                    time.sleep(0.2)
            wait_for_job(client, client.post("/jobs", json={"train_batches": 5}).json()["id"])
            yield client, children(process.pid)
        finally:
            client.close()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
