"""Redis goes away and comes back: bounded 503s meanwhile, full recovery after, no restart of anything. The API
runs in the test process, the worker as a process, both on a Redis of their own that the test stops and starts."""

import re
import time

from service.launcher.embedded_redis import EmbeddedRedis
from tests.helpers import free_port, wait_for_job, wait_for_workers, wait_until


def test_the_service_rides_out_a_redis_restart(serve_api, spawn_worker, tmp_path):
    redis = EmbeddedRedis(tmp_path / "redis", port=free_port())
    redis.start()
    try:
        api = serve_api(redis_url=redis.url)
        worker = spawn_worker(api.settings)
        wait_for_workers(api.settings, [worker])
        with api.client() as client:
            before = wait_for_job(client, client.post("/jobs", json={"train_batches": 3}).json()["id"])
            assert before["status"] == "succeeded"
            running = client.post("/jobs", json={"train_batches": 300, "test_every": 100}).json()["id"]
            wait_until(lambda: client.get(f"/jobs/{running}/metrics").json()["points"], 60, "the job trains")

            redis.stop()  # SIGTERM: the append-only file is flushed
            for method, path in [
                ("GET", f"/jobs/{running}"),
                ("GET", "/jobs"),
                ("POST", "/jobs"),
                ("GET", f"/jobs/{running}/metrics"),
                ("POST", f"/jobs/{running}/cancel"),
            ]:
                asked = time.monotonic()
                response = client.request(method, path, json={} if method == "POST" else None)
                assert response.status_code == 503, (path, response.text)
                assert "Redis is unavailable" in response.json()["detail"]
                assert time.monotonic() - asked < 5  # bounded by MNIST_REDIS_TIMEOUT_S, never a hang
            assert client.get("/healthz").status_code == 200
            # The worker has met the outage too: it keeps the points it could not send, and tries again.
            wait_until(lambda: worker.output().count("could not publish") >= 2, 30, "the worker retries its points")

            redis.start()  # same port, same append-only file
            back = time.monotonic()
            wait_until(lambda: client.get(f"/jobs/{before['id']}").status_code != 503, 10, "the API reconnects", 0.01)
            print(f"API answering again {time.monotonic() - back:.2f} s after Redis came back")
            # What was written before the outage is still there.
            again = client.get(f"/jobs/{before['id']}").json()
            assert again["status"] == "succeeded" and again["model_id"] == before["model_id"]
            assert len(client.get(f"/jobs/{before['id']}/metrics").json()["points"]) == 3
            # The job that trained through the outage finishes, with every point: none lost, none repeated.
            done = wait_for_job(client, running, timeout=300)
            assert done["status"] == "succeeded", worker.output()
            points = client.get(f"/jobs/{running}/metrics", params={"limit": 10_000}).json()["points"]
            assert [p["batch"] for p in points] == list(range(1, 301))
            # And new work flows through the same worker process, never restarted (its work loop may have started
            # again, under its name and a generation number).
            after = wait_for_job(client, client.post("/jobs", json={"train_batches": 5}).json()["id"], timeout=60)
            assert after["status"] == "succeeded", worker.output()
            assert before["worker"] == worker.worker_name
            assert re.fullmatch(rf"{re.escape(worker.worker_name)}(\.\d+)?", after["worker"]), after["worker"]
        assert worker.popen.poll() is None
    finally:
        redis.stop()
