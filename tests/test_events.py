"""GET /jobs/{id}/events end to end, read over real HTTP as a browser would: the API in the test process, the
session's worker training."""

import threading
import uuid

import httpx
import pytest

from service.client.sdk import Client, Event, parse_events
from tests.helpers import wait_for_job


def read_events(
    url: str, job_id: str, last_event_id: str | None = None, stop_after_metrics: int | None = None
) -> list[Event]:
    """The events of one connection, until the stream closes (or after that many metrics: a dropped client)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events = []
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", headers=headers, timeout=60) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        for event in parse_events(answer.iter_lines()):
            events.append(event)
            if stop_after_metrics and sum(e.name == "metric" for e in events) == stop_after_metrics:
                break
    return events


def metrics(events: list[Event]) -> list[Event]:
    return [e for e in events if e.name == "metric"]


def test_a_watcher_gets_each_batch_as_it_trains_every_status_change_and_the_end(service):
    with service.client() as client:
        job = client.post("/jobs", json={"train_batches": 30, "seed": 3}).json()
    events = read_events(service.url, job["id"])

    points = metrics(events)
    assert [p.data["batch"] for p in points] == list(range(1, 31))
    assert [p.id for p in points] == [f"1-{batch}" for batch in range(1, 31)]  # the /metrics cursor
    assert [p.data["batch"] for p in points if "val_accuracy" in p.data] == [5, 10, 15, 20, 25, 30]
    assert all("val_loss" not in p.data for p in points if p.data["batch"] % 5)  # as /metrics: no nulls

    statuses = [e.data["status"] for e in events if e.name == "status"]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "succeeded"
    assert len(set(statuses)) == len(statuses)  # only changes are sent
    # Each status says whether it is final, so a watcher needs no list of the final states.
    assert [e.data["ended"] for e in events if e.name == "status"] == [False] * (len(statuses) - 1) + [True]
    assert events[-1].name == "end" and events[-2].name == "status"  # nothing follows the end
    final = events[-1].data
    assert final["id"] == job["id"] and final["status"] == "succeeded" and final["ended"] and final["model_id"]
    assert final["progress"] == {"batch": 30, "total_batches": 30}


def test_a_reconnecting_watcher_resumes_after_its_last_event_id_and_a_late_one_gets_everything(service):
    with service.client() as client:
        job = client.post("/jobs", json={"train_batches": 20, "seed": 4}).json()
        first = read_events(service.url, job["id"], stop_after_metrics=7)  # drops mid-training
        second = read_events(service.url, job["id"], last_event_id=metrics(first)[-1].id)
        assert wait_for_job(client, job["id"])["status"] == "succeeded"

    resumed = [p.data["batch"] for p in metrics(first) + metrics(second)]
    assert resumed == list(range(1, 21))  # none lost, none repeated
    late = read_events(service.url, job["id"])
    assert [p.data["batch"] for p in metrics(late)] == list(range(1, 21))
    assert [e.data for e in late if e.name == "status"] == [{"status": "succeeded", "ended": True}]
    assert late[-1].name == "end" and late[-1].data["status"] == "succeeded"
    tail = read_events(service.url, job["id"], last_event_id="1-20")
    assert [e.name for e in tail] == ["status", "end"]


def test_many_watchers_of_one_job_all_get_every_point(service):
    with service.client() as client:
        job = client.post("/jobs", json={"train_batches": 20, "seed": 5}).json()
    seen: list[list[int]] = []

    def watch() -> None:
        seen.append([p.data["batch"] for p in metrics(read_events(service.url, job["id"]))])

    watchers = [threading.Thread(target=watch) for _ in range(20)]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join(120)
    assert seen == [list(range(1, 21))] * 20


def test_a_canceled_job_ends_its_stream_with_the_canceled_job(service):
    with Client(service.url) as client:
        job = client.train({"train_batches": 100_000, "seed": 6})
        statuses = []
        for event in client.events(job.id):
            if event.name == "metric" and event.data["batch"] == 3:
                client.cancel(job.id)
            if event.name == "status":
                statuses.append(event.data)
            if event.name == "end":
                assert event.data["status"] == "canceled" and event.data["ended"] is True
                break
        else:
            pytest.fail("the stream closed without an end event")
    assert statuses[-1] == {"status": "canceled", "ended": True}
    assert not any(status["ended"] for status in statuses[:-1])


def test_an_idle_stream_sends_keep_alives(serve_api):
    idle = serve_api(events_ping_s=0.5)  # no worker: the job stays queued
    job = httpx.post(f"{idle.url}/jobs", json={}).json()
    with httpx.stream("GET", f"{idle.url}/jobs/{job['id']}/events", timeout=10) as answer:
        lines = answer.iter_lines()
        assert next(lines).startswith("event: status")
        assert next(lines) == 'data: {"status":"queued","ended":false}'
        comments = [line for line, _ in zip(lines, range(6), strict=False) if line.startswith(":")]  # bounded read
    assert comments and all("ping" in line for line in comments)


def test_an_unknown_job_is_a_404_before_any_stream_and_a_malformed_cursor_a_422(api):
    with api.client() as client:
        missing = client.get(f"/jobs/{uuid.uuid4()}/events")
        assert missing.status_code == 404 and "no job" in missing.json()["detail"]
        job = client.post("/jobs", json={"train_batches": 1}).json()
        bad = client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "nonsense"})
        assert bad.status_code == 422
