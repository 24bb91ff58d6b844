"""Floods of connections and jobs (issue 12, item 6): past MNIST_MAX_EVENT_STREAMS a new event stream is a 503,
past MNIST_MAX_QUEUED_JOBS a new job is a 429, each with a Retry-After; a stream that ends or whose client leaves
gives its place back. No worker runs here, so submitted jobs stay queued and their event streams stay open."""

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.client.sdk import Event, parse_events
from service.settings import Settings
from tests.helpers import wait_until

# Event streams


def open_stream(stack: ExitStack, client: httpx.Client, job_id: str) -> Iterator[Event]:
    """An event stream that has started (its first event, the status, has come), open until `stack` closes.
    Its events, to keep while it should stay open: once they are dropped, httpx closes the connection."""
    answer = stack.enter_context(client.stream("GET", f"/jobs/{job_id}/events"))
    assert answer.status_code == 200, answer.read()
    events = parse_events(answer.iter_lines())
    assert next(events).name == "status"
    return events


def refused(client: httpx.Client, job_id: str) -> bool:
    """Whether a new stream is refused: it is then a 503 saying why, with a Retry-After. An accepted one is closed."""
    with client.stream("GET", f"/jobs/{job_id}/events") as answer:
        if answer.status_code != 503:
            assert answer.status_code == 200
            return False
        answer.read()
    assert int(answer.headers["retry-after"]) > 0
    assert "too many event streams are open: 2" in answer.json()["detail"]
    assert "MNIST_MAX_EVENT_STREAMS" in answer.json()["detail"]
    return True


def test_event_streams_past_the_limit_are_a_503_until_one_ends_or_its_client_leaves(serve_api):
    server = serve_api(max_event_streams=2, events_wait_s=0.1)
    with server.client() as client:
        job, other = (client.post("/jobs", json={}).json()["id"] for _ in range(2))  # queued: no worker
        with ExitStack() as first, ExitStack() as second:
            streams = [open_stream(first, client, job), open_stream(second, client, job)]
            assert refused(client, other)
            assert refused(client, other)  # a refusal takes no place

            first.close()  # its client leaves: the server notices, and its place is free again
            wait_until(lambda: not refused(client, other), 10, "a place freed by a client that left")
            # The probe that was accepted just now gives its place back as soon as the server sees it closed.
            unknown = f"/jobs/{uuid.uuid4()}/events"
            wait_until(lambda: client.get(unknown).status_code == 404, 10, "the probe's place freed")
            for _ in range(3):  # an unknown job takes no place either
                assert client.get(f"/jobs/{uuid.uuid4()}/events").status_code == 404

            with ExitStack() as third:
                streams.append(open_stream(third, client, other))
                assert refused(client, other)
                # The job ends, so does its stream (the second one): it gives its place back too.
                assert client.post(f"/jobs/{job}/cancel").status_code == 202
                assert [event.name for event in streams[1]] == ["status", "end"]
                wait_until(lambda: not refused(client, other), 10, "a place freed by a stream that ended")


def test_the_event_stream_limit_is_in_the_openapi_schema(api_settings):
    schema = create_app(api_settings()).openapi()
    refusal = schema["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["503"]
    assert "MNIST_MAX_EVENT_STREAMS" in refusal["description"] and "Retry-After" in refusal["headers"]
    assert "503" in Settings.model_fields["max_event_streams"].description
    assert Settings().max_event_streams == 100


# Queued jobs


def test_jobs_past_the_queue_limit_are_a_429_until_some_leave_the_queue(api_settings):
    with TestClient(create_app(api_settings(max_queued_jobs=3))) as client:
        recorded = client.get("/jobs").json()["total"]  # the jobs of other tests, on their own queues
        jobs = [client.post("/jobs", json={}) for _ in range(3)]
        assert [answer.status_code for answer in jobs] == [202] * 3

        full = client.post("/jobs", json={})
        assert full.status_code == 429, full.text
        assert int(full.headers["retry-after"]) > 0
        assert full.json() == {
            "detail": "the training queue is full: 3 jobs are waiting to start and at most 3 may "
            "(MNIST_MAX_QUEUED_JOBS); retry later, when some have started"
        }
        assert client.get("/jobs").json()["total"] == recorded + 3  # the refused one was not recorded

        # A canceled job leaves the queue, and makes room for one more.
        assert client.post(f"/jobs/{jobs[0].json()['id']}/cancel").status_code == 202
        assert client.post("/jobs", json={}).status_code == 202
        assert client.post("/jobs", json={}).status_code == 429


def test_the_queue_limit_is_documented():
    assert "429" in Settings.model_fields["max_queued_jobs"].description
    assert Settings().max_queued_jobs == 1000


def test_the_queue_limit_is_in_the_openapi_schema(api_settings):
    schema = create_app(api_settings()).openapi()
    refusal = schema["paths"]["/jobs"]["post"]["responses"]["429"]
    assert "MNIST_MAX_QUEUED_JOBS" in refusal["description"] and "Retry-After" in refusal["headers"]
