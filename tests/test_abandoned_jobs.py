"""An abandoned job stays abandoned: a worker cut off from Redis for longer than three heartbeats has its job
failed by the API's reaper (or retried elsewhere); when that worker comes back, it stops the job and writes
nothing: no `succeeded` over the `failed`, no model, no hand on the retry that another worker runs.

The worker is cut off by SIGSTOP (it can neither beat nor train) and let go by SIGCONT: deterministic, and from
Redis's side the same as a network partition."""

import os
import signal

from redis import Redis

from service.domain.model_store import list_models
from service.queue.workers import live_workers
from service.settings import Settings
from tests.helpers import Process, wait_for_job, wait_for_points, wait_for_workers, wait_until

LONG_JOB = {"train_batches": 600, "test_every": 200, "seed": 1}  # trains on for seconds after its worker is back
RETRIED_JOB = {"train_batches": 200, "test_every": 100, "seed": 1, "retries": 1}  # its retry is waited for


def idle(settings: Settings, worker: Process) -> bool:
    """Whether ``worker`` is registered and has no job: it has dealt with the one it ran."""
    with Redis.from_url(settings.redis_url) as redis:
        return any(w.name == worker.worker_name and w.get_state() == "idle" for w in live_workers(redis, settings))


def cut_off_until(client, job_id: str, worker: Process, status: str) -> dict:
    """Stop ``worker`` until the API shows the job ``status``; then let it go on. The job as it was then."""
    os.kill(worker.popen.pid, signal.SIGSTOP)
    try:
        return wait_until(
            lambda: (job := client.get(f"/jobs/{job_id}").json())["status"] == status and job,
            60,
            f"the reaper made job {job_id} {status}",
            poll_s=0.2,
        )
    finally:
        os.kill(worker.popen.pid, signal.SIGCONT)


def test_a_job_failed_as_abandoned_stays_failed_when_its_worker_comes_back(serve_api, spawn_worker):
    api = serve_api(heartbeat_s=1)  # the API's reaper looks every second
    worker = spawn_worker(api.settings)  # heartbeats every second: abandoned after 4 s without one
    wait_for_workers(api.settings, [worker])
    with api.client() as client:
        job_id = client.post("/jobs", json=LONG_JOB).json()["id"]
        wait_for_points(client, job_id)
        abandoned = cut_off_until(client, job_id, worker, "failed")
        assert "abandoned" in abandoned["error"], abandoned

        # Without the fix the worker trains on, and its result turns the job `succeeded`: wait for either.
        wait_until(
            lambda: idle(api.settings, worker) or client.get(f"/jobs/{job_id}").json()["status"] != "failed",
            300,
            "the worker dealt with its job",
            poll_s=0.2,
        )
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "failed", (job, worker.output())
        assert (job["error"], job["finished_at"]) == (abandoned["error"], abandoned["finished_at"])
        assert job["model_id"] is None
        assert client.get("/models").json()["models"] == []
        points = client.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
        assert len(points) < LONG_JOB["train_batches"]  # it stopped soon after it came back, saving nothing
    assert list_models(api.model_dir) == []
    assert f"job {job_id} is no longer this worker's" in worker.output()
    assert worker.popen.poll() is None  # and it lives on, for the next job
    with api.client() as client:
        assert wait_for_job(client, client.post("/jobs", json={"train_batches": 5}).json()["id"])["status"] == (
            "succeeded"
        )


def test_a_worker_that_comes_back_leaves_the_retry_to_the_worker_that_runs_it(serve_api, spawn_worker):
    api = serve_api(heartbeat_s=1)
    workers = [spawn_worker(api.settings), spawn_worker(api.settings)]
    wait_for_workers(api.settings, workers)
    with api.client() as client:
        job_id = client.post("/jobs", json=RETRIED_JOB).json()["id"]
        wait_for_points(client, job_id)
        first = client.get(f"/jobs/{job_id}").json()["worker"]
        (stale,) = [w for w in workers if w.worker_name == first]
        (other,) = [w for w in workers if w is not stale]
        os.kill(stale.popen.pid, signal.SIGSTOP)
        try:  # the reaper queues it again, and the other worker takes it
            wait_until(
                lambda: client.get(f"/jobs/{job_id}").json()["worker"] == other.worker_name,
                60,
                "the retry runs on the other worker",
                poll_s=0.2,
            )
        finally:
            os.kill(stale.popen.pid, signal.SIGCONT)
        wait_until(
            lambda: idle(api.settings, stale) or client.get(f"/jobs/{job_id}").json()["status"] != "running",
            300,
            "the stale worker dealt with its job",
            poll_s=0.2,
        )
        retry = client.get(f"/jobs/{job_id}").json()  # left alone (or, if it was quick, ended by its own worker)
        assert retry["status"] in ("running", "succeeded") and retry["worker"] == other.worker_name, retry
        job = wait_for_job(client, job_id, timeout=300)
    assert job["status"] == "succeeded", other.output()
    assert (job["attempt"], job["worker"]) == (2, other.worker_name)
    assert [m.id for m in list_models(api.model_dir) if m.job_id == job_id] == [job["model_id"]]  # one model
    assert f"job {job_id} is no longer this worker's" in stale.output()
