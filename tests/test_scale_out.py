"""Scale-out: more workers on the one Redis share the jobs; each job is trained once, its metrics its own."""

import socket
import time

from redis import Redis

from service.queue.workers import live_workers
from service.settings import Settings
from tests.conftest import wait_for_job


def test_two_workers_share_four_jobs_each_trained_by_exactly_one(stack, redis_url):
    service = stack(workers=2)
    workers = {f"{socket.gethostname()}.{process.popen.pid}": process for process in service.processes[1:]}
    wait_until_registered(redis_url, service.env["MNIST_QUEUE_NAME"], set(workers))
    config = {"train_batches": 30, "test_every": 10, "test_batch_size": 100}
    with service.client() as client:
        ids = [client.post("/jobs", json={**config, "seed": seed}).json()["id"] for seed in range(4)]
        done = {job_id: wait_for_job(client, job_id, timeout=180) for job_id in ids}
        points = {
            job_id: client.get(f"/jobs/{job_id}/metrics", params={"limit": 1000}).json()["points"] for job_id in ids
        }

    assert all(job["status"] == "succeeded" for job in done.values()), service.logs()
    assert {job["worker"] for job in done.values()} == set(workers)  # both used, and no one else
    for job_id, job in done.items():
        # Exactly one worker took the job from the queue: only the one named in it ever logged its id.
        assert [name for name, process in workers.items() if job_id in process.output()] == [job["worker"]]
        # Its stream holds its own points, each batch once: two workers publishing at once did not mix them.
        assert [point["batch"] for point in points[job_id]] == list(range(1, 31))
    assert len({job["model_id"] for job in done.values()}) == 4


def wait_until_registered(redis_url: str, queue: str, names: set[str], timeout: float = 60) -> None:
    """Until both workers have warmed up and listen on the queue, so that neither can take all the jobs."""
    settings = Settings(redis_url=redis_url, queue_name=queue)
    deadline = time.monotonic() + timeout
    with Redis.from_url(redis_url) as redis:
        while {worker.name for worker in live_workers(redis, settings)} != names:
            assert time.monotonic() < deadline, f"workers on {queue!r}: not all of {names} in {timeout} s"
            time.sleep(0.2)
