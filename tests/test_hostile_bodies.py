"""Hostile request bodies cannot stall the service for anyone else (issue 12, item 3): without the API key not a
byte of a body is read; each route takes only the body it can need; and what is read is parsed without holding
the event loop, so /healthz answers at once while such bodies pour in."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.bodies import max_json_values
from service.settings import Settings
from tests.helpers import add_model, launch

KEY = "a-key-for-the-hostile-bodies"
AUTHORIZED = {"Authorization": f"Bearer {KEY}"}
JSON = {"content-type": "application/json"}
ROUTES_WITH_BODIES = ["/jobs", "/predict", "/v2/models/mnist/infer"]


def empty_lists(size: int) -> bytes:
    """`size` bytes of JSON: one list of empty lists, the cheapest body to send and the costliest to parse."""
    return b"[" + b"[]," * ((size - 4) // 3) + b"[]]"


@pytest.fixture
def settings(redis_url, mnist_data_dir, tmp_path) -> Settings:
    return Settings(
        redis_url=redis_url,
        model_dir=tmp_path / "models",
        data_dir=mnist_data_dir,
        queue_name=f"hostile-{tmp_path.name}"[:64],
        api_key=KEY,
    )


class CountingReceive:
    """The app, with the body bytes it reads counted."""

    def __init__(self, app) -> None:
        self.app = app
        self.bytes_read = 0

    async def __call__(self, scope, receive, send) -> None:
        async def counting_receive():
            message = await receive()
            self.bytes_read += len(message.get("body", b""))
            return message

        await self.app(scope, counting_receive, send)


@pytest.mark.parametrize("path", ROUTES_WITH_BODIES)
def test_without_the_key_not_a_byte_of_a_body_is_read(settings, path):
    app = create_app(settings)
    counted = CountingReceive(app)
    with TestClient(counted) as client:
        refused = client.post(path, content=empty_lists(1_000_000), headers=JSON)
        assert counted.bytes_read == 0
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        answer = refused.json()
        assert "API key" in (answer["error"] if path.startswith("/v2/") else answer["detail"])  # each route's form
        client.post(path, content=b"{}", headers={**JSON, **AUTHORIZED})
        assert counted.bytes_read == 2  # with the key, the body is read


@contextmanager
def raw_connection(url: str) -> Iterator[socket.socket]:
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        yield connection


def answer_to_headers_alone(connection: socket.socket, path: str, length: int, headers: bytes = b"") -> str:
    """What the server answers to a request's headers, announcing `length` bytes of body, none of them sent."""
    connection.sendall(
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n".encode()
        + headers
        + b"\r\n"
    )
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        chunk = connection.recv(4096)  # times out (10 s) if the server waits for the body
        if not chunk:
            break
        answer += chunk
    return answer.decode()


def closed_by_the_server(connection: socket.socket, answer: str) -> bool:
    """Whether the server said it closes the connection after `answer` and did so: a client that goes on sending
    the body it announced does it on no connection of the server's."""
    said = "connection: close" in answer.partition("\r\n\r\n")[0].lower().split("\r\n")
    return said and connection.recv(1) == b""  # times out (10 s) if the server keeps it open


@pytest.fixture(scope="module")
def locked(redis_url, mnist_data_dir, tmp_path_factory):
    """The real API, with a key and a model, as a process of its own."""
    work = tmp_path_factory.mktemp("hostile")
    service = launch(work, redis_url, mnist_data_dir, workers=0, MNIST_API_KEY=KEY, MNIST_QUEUE_NAME="hostile")
    add_model(service.model_dir)
    yield service
    service.stop()


@pytest.mark.parametrize("path", ROUTES_WITH_BODIES)
def test_the_401_comes_before_the_body_is_sent(locked, path):
    with raw_connection(locked.url) as connection:
        answer = answer_to_headers_alone(connection, path, 5_000_000)
        assert closed_by_the_server(connection, answer), answer
    assert answer.startswith("HTTP/1.1 401") and "API key" in answer


@pytest.mark.parametrize(
    ("path", "limit", "where"),
    [
        ("/jobs", "max_json_body_bytes", "detail"),
        ("/predict", "max_body_bytes", "detail"),  # pictures, in multipart or in JSON's base64
        ("/v2/models/mnist/infer", "max_tensor_body_bytes", "error"),
    ],
)
def test_each_route_takes_the_body_it_can_need_and_no_more(locked, path, limit, where):
    """Refused from the headers, before any of the body is sent, with the route's own limit named."""
    max_bytes = getattr(Settings(), limit)
    with raw_connection(locked.url) as connection:
        answer = answer_to_headers_alone(connection, path, max_bytes + 1, f"X-API-Key: {KEY}\r\n".encode())
        assert closed_by_the_server(connection, answer), answer
    assert answer.startswith("HTTP/1.1 413"), answer
    assert json.loads(answer.partition("\r\n\r\n")[2])[where] == f"request body is over the limit of {max_bytes} bytes"


def worst_case_tensors(images: int) -> bytes:
    """A v2 request of `images` images as [N, 1, 28, 28] FP32, every value written at the greatest length a
    number in 0..1 takes in JSON (JavaScript's 0.0000012345678901234567), with Python's ", " between them."""
    value = "0.0000012345678901234567"
    row = "[" + ", ".join([value] * 28) + "]"
    image = "[[" + ", ".join([row] * 28) + "]]"
    data = "[" + ", ".join([image] * images) + "]"
    tensor = f'{{"name": "image", "shape": [{images}, 1, 28, 28], "datatype": "FP32", "data": {data}}}'
    return f'{{"id": "worst-case", "inputs": [{tensor}]}}'.encode()


def test_the_tensor_limit_holds_the_largest_batch_written_at_length(locked):
    settings = Settings()
    body = worst_case_tensors(settings.max_batch)
    assert len(body) <= settings.max_tensor_body_bytes
    with httpx.Client(base_url=locked.url, headers=AUTHORIZED, timeout=60) as client:
        answer = client.post("/v2/models/mnist/infer", content=body, headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][1]["shape"] == [settings.max_batch]


@pytest.mark.parametrize(("path", "where"), [("/predict", "detail"), ("/v2/models/mnist/infer", "error")])
def test_json_with_more_values_than_the_largest_batch_is_refused_unparsed(locked, path, where):
    limit = max_json_values(Settings().max_batch)
    body = b'{"instances": ' + empty_lists(3 * (limit // 2 + 1) + 4) + b"}"  # just over: 2 values a list
    with httpx.Client(base_url=locked.url, headers=AUTHORIZED, timeout=60) as client:
        answer = client.post(path, content=body, headers=JSON)
    assert answer.status_code == 413, answer.text
    assert answer.json()[where] == f"JSON body holds over {limit} values: more than 256 images of pixels need"


def hostile_sender(url: str, path: str, body: bytes, stop: threading.Event, answers: list[str]) -> None:
    """Send `body` to `path` over and over, each time on a new connection, as fast as the server answers."""
    address = urlsplit(url)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-API-Key: {KEY}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    while not stop.is_set():
        with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
            try:
                connection.sendall(request)
            except OSError:  # the server answered (413) and closed before the body was all sent: as it should
                pass
            try:
                answers.append(connection.recv(64)[9:12].decode() or "closed")
            except OSError:
                answers.append("reset")


def test_healthz_answers_within_100_ms_while_hostile_bodies_pour_in(locked):
    """Two senders on each route that takes a body, each sending the largest body the route takes, of empty
    lists, over and over; meanwhile /healthz is asked every 20 ms. Measured on a 2-core machine shared with other
    work (load 6 to 10): before the fix, /healthz waited up to 8.7 and 13.1 s; after it, median 15-22 ms and 95%
    within 40-60 ms, the event loop never held over ~50 ms; the worst, 100-330 ms, is the two cores' scheduling
    (this test's senders included). So 95% must answer within 100 ms, and none may take a second."""
    settings = Settings()
    sizes = {
        "/jobs": settings.max_json_body_bytes,
        "/predict": settings.max_body_bytes,
        "/v2/models/mnist/infer": settings.max_tensor_body_bytes,
    }
    stop, answers = threading.Event(), []
    senders = [
        threading.Thread(target=hostile_sender, args=(locked.url, path, empty_lists(size), stop, answers), daemon=True)
        for path, size in sizes.items()
        for _ in range(2)
    ]
    latencies = []
    with httpx.Client(base_url=locked.url, timeout=30) as probe:
        assert probe.get("/healthz").status_code == 200  # connected
        for sender in senders:
            sender.start()
        try:
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                started = time.perf_counter()
                assert probe.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.02)
        finally:
            stop.set()
            for sender in senders:
                sender.join(60)
    assert not {answer for answer in answers if answer.startswith("5")}, f"hostile requests: {sorted(set(answers))}"
    assert answers.count("413") > 30 and answers.count("422") > 30, "too few hostile requests were answered"
    latencies.sort()
    worst, typical = latencies[-1], latencies[int(0.95 * len(latencies))]
    summary = f"/healthz: 95% within {typical * 1000:.0f} ms, worst {worst * 1000:.0f} ms"
    assert typical < 0.1 and worst < 1, summary
