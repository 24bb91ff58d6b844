"""Graceful shutdown on SIGTERM, as a container runtime sends it: nothing in flight is lost. The process that is
sent the signal is a real one: the API's own, or a worker's."""

import json
import os
import signal
import socket
import time
from pathlib import Path

from tests.helpers import wait_for_job, wait_for_points, wait_until


def test_sigterm_to_the_api_lets_an_in_flight_request_finish(stack):
    service = stack(workers=0)
    api = service.processes[0]
    port = int(service.url.rsplit(":", 1)[1])
    body = json.dumps({"train_batches": 1}).encode()
    head = f"POST /jobs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        # The request is in flight: the route has started and waits for the rest of its body.
        connection.sendall(head.encode() + body[:5])
        wait_until(lambda: has_read(api.popen.pid, connection), 10, "the API reads the start of the request")
        api.popen.send_signal(signal.SIGTERM)
        wait_until_refused(port)  # the API is shutting down: it takes no new connection
        connection.sendall(body[5:])
        response = receive_all(connection)
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 202 Accepted", response
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["status"] == "queued"
    api.popen.wait(timeout=30)  # and once the request is answered, it exits


def test_sigterm_to_a_worker_fails_its_job_at_the_next_batch_keeping_its_points(api, spawn_worker):
    worker = spawn_worker(api.settings)
    with api.client() as client:
        job_id = client.post("/jobs", json={"train_batches": 5000, "test_every": 1000}).json()["id"]
        wait_for_points(client, job_id)
        worker.popen.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        worker.popen.wait(timeout=30)
        exited_after = time.monotonic() - asked
        job = wait_for_job(client, job_id, timeout=30)
        points = client.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
    assert exited_after < 5, f"the worker took {exited_after:.1f} s to exit:\n{worker.output()}"
    assert job["status"] == "failed" and "worker shut down" in job["error"], job
    assert job["model_id"] is None
    batches = [point["batch"] for point in points]
    assert 3 <= len(batches) < 5000 and batches == list(range(1, len(batches) + 1))
    assert job["progress"]["batch"] == batches[-1]


def has_read(pid: int, connection: socket.socket) -> bool:
    """Whether process ``pid`` has accepted ``connection`` (it holds the server's end of it) and read everything
    sent on it so far (that end's receive queue is empty), from Linux's table of TCP sockets."""
    client_port, server_port = connection.getsockname()[1], connection.getpeername()[1]
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held.add(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        _, local, remote, _, queues, *_, inode = line.split()[:10]
        if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
            return f"socket:[{inode}]" in held and int(queues.split(":")[1], 16) == 0
    return False


def wait_until_refused(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.05)
    raise AssertionError(f"port {port} still accepts connections {timeout} s after SIGTERM")


def receive_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection, as it does after a request during shutdown."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
