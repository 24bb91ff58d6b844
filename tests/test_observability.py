"""What operators watch: readiness, Prometheus metrics, request ids and JSON logs. The API runs in the test process,
except where its own process is watched (its log lines, the container's healthcheck command)."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.domain.mnist import FILES, DataError, check_sizes
from tests.helpers import environment, free_port, launch, wait_for_job, wait_for_points, wait_until


def scrape(client) -> dict[str, list]:
    """GET /metrics, parsed: each metric family's samples, by family name."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list, name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return found


def increase(before: dict, after: dict, family: str, name: str, **labels: str) -> float:
    """How much a counter grew between two scrapes (one the test process's, which counts the requests of every
    in-process test): from 0 if the first scrape did not have it yet."""
    try:
        start = value(before.get(family, []), name, **labels)
    except ValueError:  # not there yet
        start = 0.0
    return value(after[family], name, **labels) - start


@pytest.fixture(scope="module")
def api_process(redis_url, mnist_data_dir, shared_settings, worker, tmp_path_factory):
    """The API as a process of its own, on the shared queue, where the session's worker trains: for what is
    watched of the processes themselves."""
    work = tmp_path_factory.mktemp("api-process")
    service = launch(work, redis_url, mnist_data_dir, workers=0, **environment(shared_settings))
    service.processes.append(worker)  # its log too
    yield service
    service.processes[0].terminate()


# Readiness


def wait_until_ready(service, timeout: float = 60):
    """/readyz's answer once it is 200 (a worker registers once it has warmed up); the last one if it never is."""
    deadline = time.monotonic() + timeout
    with service.client() as client:
        while (response := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
    return response


def test_ready_when_redis_data_and_a_worker_are_there(service):
    response = wait_until_ready(service)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"redis": "ok", "data": "ok", "workers": "ok"}}


def test_unready_names_each_failed_check(serve_api, tmp_path, mnist_data_dir):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in FILES:
        (data_dir / name).symlink_to(mnist_data_dir / name)
    (data_dir / "t10k-labels-idx1-ubyte").unlink()
    (data_dir / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 100)
    service = serve_api(data_dir=data_dir)  # and no worker on its queue
    with service.client() as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready" and body["checks"]["redis"] == "ok"
    assert "t10k-labels-idx1-ubyte has 100 bytes, expected 10008" in body["checks"]["data"]
    assert body["checks"]["workers"] == f"no worker has been seen on queue '{service.settings.queue_name}'"


def test_the_data_check_looks_at_sizes_only(tmp_path, mnist_data_dir):
    with pytest.raises(DataError, match="train-images-idx3-ubyte is missing"):
        check_sizes(tmp_path)
    for name in FILES:  # the right sizes, the wrong bytes: a worker's sha256 check will catch these
        (tmp_path / name).write_bytes(b"\0" * (mnist_data_dir / name).stat().st_size)
    check_sizes(tmp_path)


def test_a_hung_redis_gives_a_quick_503_while_healthz_still_answers(serve_api):
    # A socket that accepts connections and never answers: every Redis call waits for its timeout.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        service = serve_api(redis_url=f"redis://127.0.0.1:{hung.getsockname()[1]}/0", redis_timeout_s=0.3)
        with service.client() as client:
            assert client.get("/healthz").status_code == 200
            started = time.monotonic()
            response = client.get("/readyz")
            took = time.monotonic() - started
            metrics = scrape(client)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"].startswith("unreachable:") and checks["workers"] == "not checked: Redis is unreachable"
    assert took < 5, f"/readyz took {took:.1f} s"  # the client retries a timed-out call 3 times: 4 x 0.3 s
    assert value(metrics["mnist_redis_up"], "mnist_redis_up") == 0 and "mnist_jobs" not in metrics


def test_the_containers_healthcheck_command_checks_the_api_or_this_hosts_worker(api_process):
    assert wait_until_ready(api_process).status_code == 200

    def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **api_process.env, "MNIST_PORT": api_process.url.rsplit(":", 1)[1], **env}
        return subprocess.run(
            [sys.executable, "-m", "service", "healthcheck", *args], env=env, capture_output=True, text=True, timeout=60
        )

    assert healthcheck().returncode == 0
    assert healthcheck("--worker").returncode == 0  # the session's worker runs on this host
    no_api = healthcheck(MNIST_PORT=str(free_port()))
    assert no_api.returncode == 1 and "does not answer /healthz" in no_api.stderr
    no_worker = healthcheck("--worker", MNIST_QUEUE_NAME="nobody-listens-here")
    assert no_worker.returncode == 1 and "no worker of host" in no_worker.stderr


# Metrics


def test_http_requests_are_counted_and_timed_by_route_template(api):
    with api.client() as client:
        before = scrape(client)
        job_id = client.post("/jobs", json={"train_batches": 2, "test_batch_size": 10}).json()["id"]
        assert client.get(f"/jobs/{job_id}").status_code == 200  # queued: no worker here
        missing = uuid.uuid4()
        client.get(f"/jobs/{missing}")
        client.get("/no/such/path")
        metrics = scrape(client)

    def grew(family: str, name: str, **labels: str) -> float:
        return increase(before, metrics, family, name, **labels)

    requests = "mnist_http_requests"
    assert grew(requests, "mnist_http_requests_total", method="GET", route="/jobs/{job_id}", status="200") == 1
    assert grew(requests, "mnist_http_requests_total", method="GET", route="/jobs/{job_id}", status="404") == 1
    assert grew(requests, "mnist_http_requests_total", method="POST", route="/jobs", status="202") == 1
    assert grew(requests, "mnist_http_requests_total", method="GET", route="unmatched", status="404") == 1
    routes = {sample.labels["route"] for sample in metrics[requests]}
    assert not any(job_id in route or str(missing) in route or "/no/" in route for route in routes), routes
    durations = "mnist_http_request_duration_seconds"
    assert grew(durations, f"{durations}_count", method="GET", route="/jobs/{job_id}") == 2
    assert grew(durations, f"{durations}_bucket", method="POST", route="/jobs", le="+Inf") == 1


def test_jobs_queue_workers_and_training_speed_are_read_from_redis_at_scrape_time(api, spawn_worker):
    with api.client() as client:
        waiting = [client.post("/jobs", json={"train_batches": 2}).json()["id"] for _ in range(2)]
        queued = scrape(client)
        spawn_worker(api.settings)
        for job_id in waiting:
            assert wait_for_job(client, job_id)["status"] == "succeeded"
        done = scrape(client)

        long_job = {"train_batches": 100_000, "test_every": 1000, "batch_size": 32}
        job_id = client.post("/jobs", json=long_job).json()["id"]
        wait_for_points(client, job_id)
        running = scrape(client)
        worker = client.get(f"/jobs/{job_id}").json()["worker"]
        client.post(f"/jobs/{job_id}/cancel")
        wait_for_job(client, job_id, timeout=30)
        ended = scrape(client)

    assert value(queued["mnist_queue_depth"], "mnist_queue_depth") == 2
    assert value(queued["mnist_jobs"], "mnist_jobs", status="queued") == 2
    assert value(queued["mnist_workers"], "mnist_workers") == 0
    assert value(done["mnist_queue_depth"], "mnist_queue_depth") == 0
    assert value(done["mnist_jobs"], "mnist_jobs", status="succeeded") == 2
    assert value(done["mnist_workers"], "mnist_workers") == 1
    assert value(done["mnist_redis_up"], "mnist_redis_up") == 1
    assert value(running["mnist_jobs"], "mnist_jobs", status="running") == 1
    (speed,) = running["mnist_training_images_per_second"]
    assert speed.labels == {"job_id": job_id, "worker": worker}
    assert 32 < speed.value < 1_000_000  # more than a batch a second, on any machine
    assert ended["mnist_training_images_per_second"] == []  # a job that ended is shown no more


# Request ids and logs


def test_a_request_id_is_returned_and_written_in_the_apis_log_lines(api_process):
    with api_process.client() as client:
        given = client.get("/healthz", headers={"X-Request-ID": "trace-me-123"})
        generated = client.get("/healthz")
        refused = client.get("/healthz", headers={"X-Request-ID": "has spaces in it"})
    assert given.headers["x-request-id"] == "trace-me-123"
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])
    api = next(process for process in api_process.processes if process.name == "api")
    wait_until(lambda: "trace-me-123" in api.output(), 5, "the API logs the request")
    (line,) = [json.loads(line) for line in api.output().splitlines() if "trace-me-123" in line]
    assert line["request_id"] == "trace-me-123" and "GET /healthz" in line["message"]


def test_the_api_and_the_worker_write_only_json_lines(api_process):
    with api_process.client() as client:
        job = wait_for_job(client, client.post("/jobs", json={"train_batches": 2}).json()["id"])
        assert job["status"] == "succeeded"
    for process in api_process.processes:
        lines = process.output().splitlines()
        assert lines, process.name
        for line in lines:
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= set(entry), line
