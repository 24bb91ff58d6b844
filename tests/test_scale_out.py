"""Scale-out: more workers on the one Redis share the jobs; each job is trained once, its metrics its own. The
session's worker and a second worker process on the shared queue; the API runs in the test process."""

from tests.helpers import wait_for_job, wait_for_workers


def test_two_workers_share_four_jobs_each_trained_by_exactly_one(service, worker, spawn_worker):
    api = service
    workers = {process.worker_name: process for process in (worker, spawn_worker(api.settings))}
    # Until both have warmed up and listen on the queue, so that neither can take all the jobs.
    wait_for_workers(api.settings, list(workers.values()))
    config = {"train_batches": 10, "test_every": 5, "test_batch_size": 100}
    with api.client() as client:
        ids = [client.post("/jobs", json={**config, "seed": seed}).json()["id"] for seed in range(4)]
        done = {job_id: wait_for_job(client, job_id, timeout=180) for job_id in ids}
        points = {
            job_id: client.get(f"/jobs/{job_id}/metrics", params={"limit": 1000}).json()["points"] for job_id in ids
        }

    logs = "\n".join(process.output() for process in workers.values())
    assert all(job["status"] == "succeeded" for job in done.values()), logs
    assert {job["worker"] for job in done.values()} == set(workers)  # both used, and no one else
    for job_id, job in done.items():
        # Exactly one worker took the job from the queue: only the one named in it ever logged its id.
        assert [name for name, process in workers.items() if job_id in process.output()] == [job["worker"]]
        # Its stream holds its own points, each batch once: two workers publishing at once did not mix them.
        assert [point["batch"] for point in points[job_id]] == list(range(1, 11))
    assert len({job["model_id"] for job in done.values()}) == 4
