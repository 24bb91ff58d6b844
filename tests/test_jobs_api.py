"""Jobs end to end: the API in this process and the session's worker process, a real Redis, real HTTP."""

import math
import time
import uuid

import pytest
from redis import Redis

from service.domain.model_store import load_network
from service.domain.training_config import TrainingConfig
from service.queue import jobs
from service.schemas.jobs import ENDED
from tests.helpers import wait_for_job, without_cuda


def test_a_short_job_trains_publishes_every_batch_once_and_saves_a_loadable_model(service, worker):
    with service.client() as client:
        response = client.post("/jobs", json={"train_batches": 30, "seed": 11})
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/jobs/{job['id']}"
        assert job["status"] == "queued" and job["config"]["seed"] == 11 and job["config"]["learning_rate"] == 0.15
        assert job["progress"] == {"batch": 0, "total_batches": 30} and job["ended"] is False

        # Poll the metrics as a client would, passing back the cursor, until the job ends.
        points, cursor, status, seen_running = [], None, "queued", False
        deadline = time.monotonic() + 120
        while status not in ENDED:
            assert time.monotonic() < deadline, worker.output()
            page = client.get(f"/jobs/{job['id']}/metrics", params={"since": cursor} if cursor else {}).json()
            points += page["points"]
            cursor, status = page["cursor"], page["status"]
            seen_running |= status == "running"
            time.sleep(0.05)
        points += client.get(f"/jobs/{job['id']}/metrics", params={"since": cursor}).json()["points"]

        assert status == "succeeded", worker.output()
        assert [p["batch"] for p in points] == list(range(1, 31))
        assert all(math.isfinite(p["loss"]) and 0 <= p["accuracy"] <= 1 for p in points)
        assert [p["batch"] for p in points if "val_accuracy" in p] == [5, 10, 15, 20, 25, 30]
        assert all("val_loss" not in p for p in points if p["batch"] % 5)

        done = client.get(f"/jobs/{job['id']}").json()
        assert done["progress"] == {"batch": 30, "total_batches": 30} and done["ended"] is True
        assert done["latest"] == points[-1]
        assert done["started_at"] and done["finished_at"] and done["worker"]
        assert 0.5 < done["test_accuracy"] <= 1 and done["test_loss"] > 0 and done["error"] is None

    _network, metadata = load_network(service.model_dir, done["model_id"])
    assert metadata.job_id == job["id"] and metadata.test_accuracy == done["test_accuracy"]
    assert metadata.config.train_batches == 30 and metadata.parameters == 5994


def test_the_tutorial_default_reaches_the_tutorials_accuracy(service, worker):
    with service.client() as client:
        response = client.post("/jobs", json={})
        assert response.status_code == 202
        job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", worker.output()
    assert job["progress"]["batch"] == 100
    assert job["test_accuracy"] >= 0.85


def test_an_empty_body_is_the_tutorial_too(api):
    with api.client() as client:
        job = client.post("/jobs").json()
    assert TrainingConfig.model_validate(job["config"]).model_copy(update={"seed": None}) == TrainingConfig()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"learning_rate": -1}, "learning_rate"),
        ({"batch_size": "big"}, "batch_size"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"train_batches": 10, "epochs": 1}, None),
    ],
)
def test_an_invalid_config_is_a_422_naming_the_field(api, body, field):
    with api.client() as client:
        response = client.post("/jobs", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    if field:
        assert detail[0]["loc"] == ["body", field]
    else:
        assert "either train_batches or epochs" in detail[0]["msg"]


def test_malformed_json_is_a_422(api):
    with api.client() as client:
        response = client.post("/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_jobs_are_listed_newest_first_with_paging(api):
    with api.client() as client:  # no worker: the jobs stay queued, on a queue of their own
        ids = [client.post("/jobs", json={"train_batches": 1, "test_batch_size": 10}).json()["id"] for _ in range(3)]
        first = client.get("/jobs", params={"limit": 2}).json()
        second = client.get("/jobs", params={"limit": 2, "offset": 2}).json()
    assert all(job["status"] == "queued" and job["ended"] is False for job in first["jobs"])
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2]
    assert second["jobs"][0]["id"] == ids[0]
    assert first["total"] >= 3 and first["limit"] == 2


def test_unknown_and_malformed_job_ids(api):
    with api.client() as client:
        assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 404
        assert client.get(f"/jobs/{uuid.uuid4()}/metrics").status_code == 404
        assert client.get("/jobs/not-a-job-id").status_code == 422
        assert client.get(f"/jobs/{uuid.uuid4()}/metrics", params={"since": "junk"}).status_code == 422


@without_cuda
def test_cuda_on_a_cpu_worker_fails_with_a_clear_message(service):
    with service.client() as client:
        job = wait_for_job(client, client.post("/jobs", json={"device": "cuda", "train_batches": 1}).json()["id"])
    assert job["status"] == "failed" and job["ended"] is True
    assert "no CUDA GPU" in job["error"] and job["model_id"] is None


def test_a_job_before_the_data_is_there_fails_with_the_data_error(api, spawn_worker, tmp_path):
    """A worker whose data directory is empty: the job fails at once, naming the missing file."""
    settings = api.settings
    with Redis.from_url(settings.redis_url) as redis:
        job = jobs.submit(redis, settings, TrainingConfig(train_batches=1))
    worker = spawn_worker(settings, MNIST_DATA_DIR=str(tmp_path / "empty"))
    with api.client() as client:
        done = wait_for_job(client, job.id, timeout=60)
    assert done["status"] == "failed", worker.output()
    assert "train-images-idx3-ubyte is missing" in done["error"] and "fetch-data" in done["error"]
