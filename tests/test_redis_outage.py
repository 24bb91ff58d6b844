"""Redis goes away and comes back: bounded 503s meanwhile, full recovery after, no restart of anything."""

import time

from service.launcher.embedded_redis import EmbeddedRedis
from tests.conftest import free_port, launch, wait_for_job


def test_the_service_rides_out_a_redis_restart(mnist_data_dir, tmp_path):
    redis = EmbeddedRedis(tmp_path / "redis", port=free_port())
    redis.start()
    service = launch(tmp_path / "service", redis.url, mnist_data_dir, workers=1)
    worker_pid = service.processes[-1].popen.pid
    try:
        with service.client() as client:
            before = wait_for_job(client, client.post("/jobs", json={"train_batches": 10}).json()["id"])
            assert before["status"] == "succeeded"
            running = client.post("/jobs", json={"train_batches": 600, "test_every": 200}).json()["id"]
            while not client.get(f"/jobs/{running}/metrics").json()["points"]:
                time.sleep(0.05)

            redis.stop()  # SIGTERM: the append-only file is flushed
            outage = time.monotonic()
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
            time.sleep(max(0.0, 3 - (time.monotonic() - outage)))

            redis.start()  # same port, same append-only file
            back = time.monotonic()
            while client.get(f"/jobs/{before['id']}").status_code == 503:
                assert time.monotonic() - back < 10, "the API did not reconnect"
                time.sleep(0.01)
            print(f"API answering again {time.monotonic() - back:.2f} s after Redis came back")
            # What was written before the outage is still there.
            again = client.get(f"/jobs/{before['id']}").json()
            assert again["status"] == "succeeded" and again["model_id"] == before["model_id"]
            assert len(client.get(f"/jobs/{before['id']}/metrics").json()["points"]) == 10
            # The job that trained through the outage finishes, with every point: none lost, none repeated.
            done = wait_for_job(client, running, timeout=300)
            assert done["status"] == "succeeded", service.logs()
            points = client.get(f"/jobs/{running}/metrics", params={"limit": 10_000}).json()["points"]
            assert [p["batch"] for p in points] == list(range(1, 601))
            # And new work flows through the same processes.
            after = wait_for_job(client, client.post("/jobs", json={"train_batches": 5}).json()["id"], timeout=60)
            assert after["status"] == "succeeded", service.logs()
        assert all(p.popen.poll() is None for p in service.processes)
        assert service.processes[-1].popen.pid == worker_pid
    finally:
        service.stop()
        redis.stop()
