"""What the tests share besides fixtures: the service's pieces as child processes, the in-process API on a real
socket, models saved straight into a store, and polling with a deadline (never a fixed sleep)."""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI
from redis import Redis
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from torch import nn
from uvicorn.lifespan.on import LifespanOn

from bench.stack import free_port as free_port  # defined once, for the benchmarks and the tests
from bench.stack import wait_for_job as wait_for_job
from bench.training import train_model as train_model  # the one train, evaluate and save
from service.domain.model_store import ModelMetadata, new_model_id, save_model
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from service.queue.workers import live_workers
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# Devices: every test of a device path runs on the CPU, and on CUDA where this machine has it (bench/gpu.sh runs
# them on a GPU machine); a test of what a machine without CUDA answers is skipped where there is one.
NO_CUDA = "no CUDA device: run bench/gpu.sh on a GPU machine"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
without_cuda = pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has a CUDA GPU: tests/test_gpu.py checks that device 'cuda' works"
)


# Polling


def wait_until(condition: Callable[[], object], timeout: float, what: str, poll_s: float = 0.05) -> object:
    """Call ``condition`` every ``poll_s`` until it returns something true, and return that; fail after
    ``timeout`` seconds, saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while not (outcome := condition()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(poll_s)
    return outcome


def wait_for_points(client: httpx.Client, job_id: str, count: int = 3, timeout: float = 60) -> None:
    """Poll until the job has published ``count`` metric points: it is running, past its first batches."""
    wait_until(
        lambda: len(client.get(f"/jobs/{job_id}/metrics", params={"limit": count}).json()["points"]) >= count,
        timeout,
        f"job {job_id} published {count} metric points",
    )


def wait_for_workers(settings: Settings, processes: list["Process"], timeout: float = 120) -> None:
    """Until each of ``processes`` (workers) has warmed up and listens on ``settings.queue_name``."""
    names = {process.worker_name for process in processes}
    with Redis.from_url(settings.redis_url) as redis:

        def registered() -> bool:
            for process in processes:
                if process.popen.poll() is not None:
                    raise AssertionError(f"{process.name} exited:\n{process.output()}")
            return names <= {worker.name for worker in live_workers(redis, settings)}

        wait_until(registered, timeout, f"workers {sorted(names)} listen on {settings.queue_name!r}", poll_s=0.1)


# Child processes


@dataclass
class Process:
    """A child process of the tests, its output kept in a file to show when a test fails."""

    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def worker_name(self) -> str:
        """The name a worker process registers under with RQ."""
        return f"{socket.gethostname()}.{self.popen.pid}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self) -> None:
        """SIGTERM, without waiting: an idle worker takes seconds to leave (RQ's pubsub thread), which need not
        hold up the next test; ``stop_children`` waits for it at the end of the run."""
        if self.popen.poll() is None:
            self.popen.terminate()

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, and wait until it has exited (SIGKILL after ``timeout``)."""
        self.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


_children: list[Process] = []


def start_process(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log = log_dir / f"{name}.log"
    with log.open("wb") as output:
        popen = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    _children.append(Process(name, popen, log))
    return _children[-1]


def cli(*args: str, url: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`mnist-service ARGS --url URL` as a user runs it, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args, "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stop_children() -> None:
    """Stop every process the tests started and wait for them: all told at once, so they leave together."""
    for child in _children:
        child.terminate()
    for child in _children:
        child.stop()


def environment(settings: Settings) -> dict[str, str]:
    """The MNIST_* variables that give a process ``settings``' Redis, data, store, queue and heartbeat."""
    fields = ("redis_url", "data_dir", "model_dir", "queue_name", "heartbeat_s")
    return {Settings.env_name(field): str(getattr(settings, field)) for field in fields}


def start_worker(name: str, env: dict[str, str], log_dir: Path) -> Process:
    # One torch thread each: the tests, the API and other workers share CI's two cores, and a 2-thread pool
    # stalls whenever another process needs a core (10x slower measured; see docs/benchmarks.md).
    return start_process(name, [sys.executable, "-m", "worker"], {"MNIST_TORCH_THREADS": "1", **env}, log_dir)


@dataclass
class Service:
    """The API as a process of its own, and the workers started with it."""

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

    def terminate(self) -> None:
        for process in self.processes:
            process.terminate()

    def stop(self) -> None:
        self.terminate()
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
    service = Service(f"http://127.0.0.1:{port}", env, Path(env["MNIST_MODEL_DIR"]), [api], work)
    for _ in range(workers):
        service.add_worker()
    try:
        wait_until_healthy(service.url, service.processes)
    except BaseException:
        service.stop()
        raise
    return service


def wait_until_healthy(url: str, processes: list[Process], timeout: float = 60) -> None:
    def healthy() -> bool:
        for process in processes:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited:\n{process.output()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout, f"{url} answers /healthz", poll_s=0.1)


# The API in this process, on a real socket


@dataclass
class Server:
    """An app served over real HTTP by uvicorn, in a thread of the test process: no process to start."""

    url: str
    app: FastAPI

    @property
    def settings(self) -> Settings:
        return self.app.state.settings

    @property
    def model_dir(self) -> Path:
        return self.settings.model_dir

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, **options) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)


class _Host:
    """One uvicorn server for the whole test run, started on first use, listening on a few ports: each port
    serves the app mounted on it, if any. Mounting an app runs its lifespan, as a server of its own would, and
    costs milliseconds where starting and stopping a uvicorn server costs a quarter of a second."""

    PORTS = 4

    def __init__(self) -> None:
        self.sockets = []
        for _ in range(self.PORTS):
            # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP, and without it a
            # keep-alive client waits out a 40 ms delayed ACK on every request.
            listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            listening.bind(("127.0.0.1", 0))
            self.sockets.append(listening)
        self.apps: dict[int, ASGIApp | None] = {s.getsockname()[1]: None for s in self.sockets}
        self.in_flight = dict.fromkeys(self.apps, 0)
        # No log config of uvicorn's own: its lines go to the root logger, which pytest captures.
        self.server = uvicorn.Server(uvicorn.Config(self, lifespan="off", log_config=None))
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self.server.serve(self.sockets),), name="uvicorn", daemon=True
        )
        thread.start()
        wait_until(lambda: self.server.started or not thread.is_alive(), 30, "uvicorn started", poll_s=0.01)
        assert self.server.started, "uvicorn did not start; see the captured log"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        port = scope["server"][1]
        app = self.apps[port]
        if app is None:
            await PlainTextResponse("no app is mounted on this port now", 503)(scope, receive, send)
            return
        self.in_flight[port] += 1
        try:
            await app(scope, receive, send)
        finally:
            self.in_flight[port] -= 1

    def run(self, coroutine: Coroutine, timeout: float = 30) -> object:
        """Run ``coroutine`` on the server's event loop; its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @contextmanager
    def mount(self, app: FastAPI, lifespan: bool) -> Iterator[int]:
        port = next((port for port, mounted in self.apps.items() if mounted is None), None)
        assert port is not None, f"at most {self.PORTS} apps are served at once"
        startup = LifespanOn(uvicorn.Config(app, lifespan="on", log_config=None)) if lifespan else None
        if startup:
            self.run(startup.startup())
            assert not startup.should_exit, "the app's lifespan failed to start; see the captured log"
        self.apps[port] = app
        try:
            yield port
        finally:
            self.apps[port] = None  # new requests get a 503; those in flight finish, as in a graceful shutdown
            wait_until(lambda: self.in_flight[port] == 0, 30, f"requests in flight on port {port} ended", 0.01)
            if startup:
                self.run(startup.shutdown())


_host: _Host | None = None


@contextmanager
def serve(app: FastAPI, lifespan: bool = True) -> Iterator[Server]:
    """Serve ``app`` over real HTTP until the block ends, its lifespan run first unless ``lifespan`` is false
    (then the app has no Redis client: for a replica that must answer without Redis)."""
    global _host
    if _host is None:
        _host = _Host()
    with _host.mount(app, lifespan) as port:
        yield Server(f"http://127.0.0.1:{port}", app)


# Models


def model_metadata(config: TrainingConfig, created_at: datetime, **fields) -> ModelMetadata:
    """A model's metadata as a worker writes it; ``fields`` replace the made-up outcome."""
    return ModelMetadata(
        **{
            "id": new_model_id(created_at),
            "job_id": None,
            "created_at": created_at,
            "config": config,
            "test_accuracy": 0.9,
            "test_loss": 0.3,
            "parameters": 5994,
            "train_seconds": 1.0,
            "device": "cpu",
            "versions": {"torch": torch.__version__},
            **fields,
        }
    )


def add_model(model_dir: Path, month: int = 1, **config) -> str:
    """An untrained model created in ``month`` of 2026 by job ``job-<month>``, saved into the store as a worker
    saves one: its answers are arbitrary, but it serves. Its id."""
    training_config = TrainingConfig(seed=month, **config)
    metadata = model_metadata(
        training_config,
        datetime(2026, month, 1, tzinfo=UTC),
        job_id=f"job-{month}",
        test_accuracy=0.5 + month / 100,
        test_loss=1.0,
    )
    save_model(model_dir, build_network(training_config), metadata, make_default=training_config.make_default)
    return metadata.id


class Recorder(nn.Module):
    """Remembers which images it was trained on (each image carries its index in its first pixel)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 10)
        self.seen: list[int] = []

    def forward(self, x):
        if self.training:
            self.seen += x[:, 0, 0, 0].round().long().tolist()
        return self.linear(x[:, :, 0, 0])
