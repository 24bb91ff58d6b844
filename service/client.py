"""A small typed client of the service's HTTP API, for the command line and for any Python program.

    with Client("http://localhost:8000") as client:
        job = client.train({"train_batches": 300})
        for point in client.watch(job["id"]):
            print(point["batch"], point["loss"])
        print(client.wait(job["id"])["test_accuracy"])

Every failure is a `ServiceError`: its `status` is the HTTP status (None when the server could not be
reached) and its `detail` the server's own explanation.
"""

import base64
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://localhost:8000"
STREAM_IDLE_S = 60.0  # an event stream silent for longer is dead: the server sends keep-alives every 15 s
RECONNECTS = 5  # a dropped event stream is resumed this many times in a row before giving up


class ServiceError(Exception):
    def __init__(self, status: int | None, detail: Any) -> None:
        super().__init__(_explain(detail))
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a job: `metric`, `status` or `end`, its data decoded from JSON."""

    name: str
    data: Any
    id: str | None = None


class Client:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def train(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue a training job (`{}`: the tutorial's); the job as queued, with its id."""
        return self._call("POST", "/jobs", json=config or {})

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}")

    def jobs(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """`{"jobs": [...], "total": ...}`, newest first."""
        return self._call("GET", "/jobs", params={"limit": limit, "offset": offset})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{job_id}/cancel")

    def models(self) -> dict[str, Any]:
        """`{"models": [...], "default": ...}`, newest first."""
        return self._call("GET", "/models")

    def predict(self, images: Iterable[str | Path | bytes]) -> dict[str, Any]:
        """Classify pictures (file paths or the files' bytes) in one request: one prediction per picture."""
        instances = [{"image": base64.b64encode(_read(image)).decode()} for image in images]
        return self._call("POST", "/predict", json={"instances": instances})

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events until `end`. A dropped connection is resumed after the last metric received."""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_event_id} if last_event_id else {})
            try:
                with self._http.stream("GET", f"/jobs/{job_id}/events", headers=headers,
                                       timeout=httpx.Timeout(self._http.timeout.connect, read=STREAM_IDLE_S)) as answer:
                    if answer.is_error:
                        answer.read()
                        raise _error(answer)
                    for event in parse_events(answer.iter_lines()):
                        failures = 0
                        last_event_id = event.id or last_event_id
                        yield event
                        if event.name == "end":
                            return
                reason: object = "the server closed it before the end"
            except httpx.TransportError as error:
                reason = error
            failures += 1
            if failures > RECONNECTS:
                raise ServiceError(None, f"lost the event stream of job {job_id}: {reason}")
            time.sleep(0.2 * failures)

    def watch(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's metric points, one per training batch, as they are published, until it ends."""
        return (event.data for event in self.events(job_id) if event.name == "metric")

    def wait(self, job_id: str) -> dict[str, Any]:
        """Block until the job has ended; the final job."""
        return next(event.data for event in self.events(job_id) if event.name == "end")

    def _call(self, method: str, path: str, **kwargs) -> Any:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ServiceError(None, f"cannot reach {self.url}: {error}") from None
        if answer.is_error:
            raise _error(answer)
        return answer.json()


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Server-Sent Events from the stream's lines; comments (the keep-alives) are skipped."""
    name, data, event_id = "message", [], None
    for line in lines:
        if not line:  # a blank line ends an event
            if data:
                yield Event(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def _read(image: str | Path | bytes) -> bytes:
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def _error(answer: httpx.Response) -> ServiceError:
    try:
        detail = answer.json().get("detail", answer.text)
    except (ValueError, AttributeError):  # not JSON, or not an object
        detail = answer.text or answer.reason_phrase
    return ServiceError(answer.status_code, detail)


def _explain(detail: Any) -> str:
    """The server's detail in one line; a validation error names each field (`learning_rate: ...`)."""
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(map(str, item.get('loc', [])[1:])) or 'body'}: {item.get('msg')}"
            if isinstance(item, dict) else str(item)
            for item in detail
        )
    return str(detail)
