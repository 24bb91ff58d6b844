"""Nothing accepted is lost: cancelled jobs, killed workers and retries. The API runs in this process; the workers
are real processes: the session's shared one, or, where a test kills them, workers of its own."""

import signal
import time

from service.domain.model_store import list_models
from tests.helpers import wait_for_job, wait_for_points, wait_for_workers

LONG_JOB = {"train_batches": 100_000, "test_every": 1000}


def test_a_queued_job_canceled_never_runs(service, worker):
    with service.client() as client:
        # The worker is busy with a long job, so the next two wait in the queue, in order.
        busy = client.post("/jobs", json=LONG_JOB).json()["id"]
        wait_for_points(client, busy)
        job_id = client.post("/jobs", json={"train_batches": 5}).json()["id"]
        after = client.post("/jobs", json={"train_batches": 2}).json()["id"]
        response = client.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 202 and response.json()["status"] == "canceled"
        assert response.json()["ended"] is True
        client.post(f"/jobs/{busy}/cancel")
        # The job queued behind it has run: the worker has been past the canceled one, and left it alone.
        assert wait_for_job(client, after)["status"] == "succeeded", worker.output()
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "canceled" and job["worker"] is None
        assert client.get(f"/jobs/{job_id}/metrics").json()["points"] == []
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 409


def test_a_running_job_canceled_stops_at_the_next_batch_keeping_its_metrics(service, worker):
    models_before = {model.id for model in list_models(service.model_dir)}
    with service.client() as client:
        job_id = client.post("/jobs", json=LONG_JOB).json()["id"]
        wait_for_points(client, job_id)
        asked = time.monotonic()
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
        job = wait_for_job(client, job_id, timeout=30)
        took = time.monotonic() - asked
        points = client.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
        assert job["status"] == "canceled" and job["ended"] is True, worker.output()
        assert took < 5, f"cancel took {took:.1f} s"
        print(f"running job canceled {took:.2f} s after the request, after {len(points)} batches")
        assert job["model_id"] is None and {model.id for model in list_models(service.model_dir)} == models_before
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


def test_a_killed_workers_job_fails_or_is_retried_and_the_queue_moves_on(serve_api, spawn_worker):
    """One story, so that its workers warm up twice rather than three times: a job whose worker is killed fails
    in bounded time and the queue moves on once a worker comes; one that asks for retries restarts cleanly on
    another worker."""
    api = serve_api(heartbeat_s=1)  # the API's reaper looks every second
    first = spawn_worker(api.settings)  # heartbeats every second
    with api.client() as client:
        doomed = client.post("/jobs", json=LONG_JOB).json()["id"]
        waiting = client.post("/jobs", json={"train_batches": 3}).json()["id"]
        wait_for_points(client, doomed)
        first.popen.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        job = wait_for_job(client, doomed, timeout=60)
        detected = time.monotonic() - killed
        assert job["status"] == "failed" and "worker died" in job["error"], job
        assert detected < 15, f"took {detected:.1f} s"  # 3 heartbeats of 1 s + the API's 1 s check
        assert client.get(f"/jobs/{waiting}").json()["status"] == "queued"
        print(f"dead worker detected after {detected:.1f} s")

        workers = [spawn_worker(api.settings), spawn_worker(api.settings)]  # they warm up at once
        assert wait_for_job(client, waiting)["status"] == "succeeded"
        wait_for_workers(api.settings, workers)

        job_id = client.post("/jobs", json={"train_batches": 200, "test_every": 100, "retries": 1}).json()["id"]
        wait_for_points(client, job_id)
        (running,) = [w for w in workers if w.worker_name == client.get(f"/jobs/{job_id}").json()["worker"]]
        (other,) = [w for w in workers if w is not running]
        running.popen.send_signal(signal.SIGKILL)
        job = wait_for_job(client, job_id, timeout=120)
        points = client.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
    assert job["status"] == "succeeded", other.output()
    assert job["attempt"] == 2 and job["model_id"] and job["worker"] == other.worker_name
    second_attempt = [p["batch"] for p in points if p["attempt"] == 2]
    assert second_attempt == list(range(1, 201))  # the retry starts from batch 1, each batch once
    assert all(p["attempt"] == 1 for p in points[: len(points) - 200])
