"""`mnist-service run`: embedded Redis + API + worker from one command, and all of it gone after SIGTERM."""

import signal
import sys
from pathlib import Path

import httpx

from tests.helpers import free_port, start_process, wait_for_job, wait_until_healthy


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_run_starts_embedded_redis_api_and_worker_and_stops_them(mnist_data_dir, tmp_path, monkeypatch):
    port = free_port()
    env = {
        "MNIST_DATA_DIR": str(mnist_data_dir),
        "MNIST_STATE_DIR": str(tmp_path / "state"),
        "MNIST_MODEL_DIR": str(tmp_path / "models"),
    }
    monkeypatch.delenv("MNIST_REDIS_URL", raising=False)  # no URL: run starts its own Redis
    run = start_process("run", [sys.executable, "-m", "service", "run", "--port", str(port)], env, tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, [run])
        with httpx.Client(base_url=url, timeout=30) as client:
            job = wait_for_job(client, client.post("/jobs", json={"train_batches": 5}).json()["id"])
        assert job["status"] == "succeeded", run.output()
        assert (tmp_path / "state" / "redis" / "redis.sock").exists()
        started = children_of(run.popen.pid)
        assert len(started) == 3, run.output()  # redis-server, one worker, the API
    finally:
        run.popen.send_signal(signal.SIGTERM)
        run.popen.wait(timeout=30)
    assert not [pid for pid in started if alive(pid)], run.output()
