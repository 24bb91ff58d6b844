"""Nothing accepted is lost: cancelled jobs, killed workers and retries, with real processes."""

import signal
import time

from tests.conftest import wait_for_job

LONG_JOB = {"train_batches": 100_000, "test_every": 1000}


def wait_for_points(client, job_id: str, count: int = 3, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(client.get(f"/jobs/{job_id}/metrics").json()["points"]) < count:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)


def test_a_queued_job_canceled_never_runs(stack):
    service = stack(workers=0)
    with service.client() as client:
        job_id = client.post("/jobs", json={"train_batches": 5}).json()["id"]
        response = client.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 202 and response.json()["status"] == "canceled"
        service.add_worker()
        time.sleep(3)  # a worker is there now; the job must still not run
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "canceled" and job["worker"] is None
        assert client.get(f"/jobs/{job_id}/metrics").json()["points"] == []
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 409


def test_a_running_job_canceled_stops_at_the_next_batch_keeping_its_metrics(stack):
    service = stack(workers=1)
    with service.client() as client:
        job_id = client.post("/jobs", json=LONG_JOB).json()["id"]
        wait_for_points(client, job_id)
        asked = time.monotonic()
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
        job = wait_for_job(client, job_id, timeout=30)
        took = time.monotonic() - asked
        points = client.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
        assert job["status"] == "canceled", service.logs()
        assert took < 5, f"cancel took {took:.1f} s"
        print(f"running job canceled {took:.2f} s after the request, after {len(points)} batches")
        assert job["model_id"] is None and not list(service.model_dir.glob("*"))
        assert [p["batch"] for p in points] == list(range(1, len(points) + 1)) and len(points) >= 3
        assert job["error"] == "canceled"
        # The worker is free again.
        assert (
            wait_for_job(client, client.post("/jobs", json={"train_batches": 3}).json()["id"])["status"] == "succeeded"
        )


def test_cancel_of_an_ended_or_unknown_job(service):
    with service.client() as client:
        job = wait_for_job(client, client.post("/jobs", json={"train_batches": 2}).json()["id"])
        response = client.post(f"/jobs/{job['id']}/cancel")
        assert response.status_code == 409 and "already ended: succeeded" in response.json()["detail"]
        assert client.post("/jobs/00000000-0000-4000-8000-000000000000/cancel").status_code == 404


def test_a_killed_workers_job_fails_in_bounded_time_and_the_queue_moves_on(stack):
    service = stack(workers=1, MNIST_HEARTBEAT_S="1")
    worker = service.processes[-1]
    with service.client() as client:
        doomed = client.post("/jobs", json=LONG_JOB).json()["id"]
        waiting = client.post("/jobs", json={"train_batches": 3}).json()["id"]
        wait_for_points(client, doomed)
        worker.popen.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        job = wait_for_job(client, doomed, timeout=60)
        detected = time.monotonic() - killed
        assert job["status"] == "failed" and "worker died" in job["error"], job
        assert detected < 15, f"took {detected:.1f} s"  # 3 heartbeats of 1 s + the API's 1 s check
        assert client.get(f"/jobs/{waiting}").json()["status"] == "queued"
        service.add_worker()
        assert wait_for_job(client, waiting)["status"] == "succeeded"
    print(f"dead worker detected after {detected:.1f} s")


def test_a_job_that_asks_for_retries_restarts_cleanly_on_another_worker(stack):
    service = stack(workers=1, MNIST_HEARTBEAT_S="1")
    first = service.processes[-1]
    with service.client() as client:
        job_id = client.post("/jobs", json={"train_batches": 400, "test_every": 100, "retries": 1}).json()["id"]
        wait_for_points(client, job_id)
        first.popen.send_signal(signal.SIGKILL)
        service.add_worker()
        job = wait_for_job(client, job_id, timeout=120)
        points = client.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
    assert job["status"] == "succeeded", service.logs()
    assert job["attempt"] == 2 and job["model_id"]
    second_attempt = [p["batch"] for p in points if p["attempt"] == 2]
    assert second_attempt == list(range(1, 401))  # the retry starts from batch 1, each batch once
    assert all(p["attempt"] == 1 for p in points[: len(points) - 400])
