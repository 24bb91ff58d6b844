"""A small typed client of the service's HTTP API, for the command line and for any Python program.

    with Client("http://localhost:8000") as client:
        job = client.train({"train_batches": 300})
        for point in client.watch(job.id):
            print(point.batch, point.loss)
        print(client.wait(job.id).test_accuracy)

Answers are the service's own pydantic models (`service.schemas`). Every failure is a `ServiceError`, or one of
its kinds (`NotFound`, `Conflict`, `Invalid`, `Unauthorized`): its `status` is the HTTP status (None when the
server could not be reached) and its `detail` the server's own explanation. A server that answers something else
than the API's JSON (a web page, another service) is a `ServiceError` saying so, with the answer's status.
"""

import base64
import io
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from PIL import Image
from pydantic import BaseModel, ValidationError

from service.domain.metric_point import MetricPoint
from service.schemas.jobs import Job, JobList
from service.schemas.models import DefaultModel, ModelList
from service.schemas.predictions import Prediction, Predictions

DEFAULT_URL = "http://localhost:8000"
STREAM_IDLE_S = 60.0  # an event stream silent for longer is dead: the server sends keep-alives every 15 s
RECONNECTS = 5  # a dropped event stream is resumed this many times in a row before giving up
MAX_BATCH = 256  # the server's default MNIST_MAX_BATCH: images per /predict request

Answer = TypeVar("Answer", bound=BaseModel)

# What `predict` takes: a picture (its path, its file's bytes, a PIL image), or an MNIST-like pixel grid.
ImageLike = str | Path | bytes | Image.Image | np.ndarray


class ServiceError(Exception):
    def __init__(self, status: int | None, detail: Any) -> None:
        super().__init__(_explain(detail))
        self.status = status
        self.detail = detail


class Unauthorized(ServiceError):
    """401: the API key is missing or wrong."""


class NotFound(ServiceError):
    """404: no such job or model."""


class Conflict(ServiceError):
    """409: e.g. no model trained yet, or a job that has already ended."""


class Invalid(ServiceError):
    """The server refused the request as sent: a bad field, picture or size (400, 413, 415, 422)."""


_ERRORS = {401: Unauthorized, 404: NotFound, 409: Conflict, 400: Invalid, 413: Invalid, 415: Invalid, 422: Invalid}


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a job: `metric`, `status` or `end`, its data decoded from JSON."""

    name: str
    data: Any
    id: str | None = None


class Client:
    def __init__(
        self, url: str = DEFAULT_URL, timeout: float = 30.0, api_key: str | None = None, max_batch: int = MAX_BATCH
    ) -> None:
        """`api_key`: the server's MNIST_API_KEY, if it has one; `max_batch`: its MNIST_MAX_BATCH."""
        self.url = url.rstrip("/")
        self.max_batch = max_batch
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def train(self, config: dict[str, Any] | None = None) -> Job:
        """Queue a training job (`{}`: the tutorial's); the job as queued, with its id."""
        return self._call(Job, "POST", "/jobs", json=config or {})

    def job(self, job_id: str) -> Job:
        return self._call(Job, "GET", f"/jobs/{job_id}")

    def jobs(self, limit: int = 50, offset: int = 0) -> JobList:
        """Jobs, newest first."""
        return self._call(JobList, "GET", "/jobs", params={"limit": limit, "offset": offset})

    def cancel(self, job_id: str) -> Job:
        return self._call(Job, "POST", f"/jobs/{job_id}/cancel")

    def models(self) -> ModelList:
        """Models, newest first, and the default."""
        return self._call(ModelList, "GET", "/models")

    def choose_default(self, model_id: str) -> DefaultModel:
        """Make the model the one /predict uses when none is named (until another is chosen)."""
        return self._call(DefaultModel, "POST", f"/models/{model_id}/default")

    def predict(
        self, images: ImageLike | Iterable[ImageLike], model_id: str | None = None, return_image: bool = False
    ) -> Predictions:
        """The digit in each image, in order. A picture (a path, a file's bytes, a PIL image) is prepared by the
        server as MNIST's digits were; an array is an MNIST-like pixel grid, used as sent (28x28 or 784 values,
        0..255), and a 3-D array a batch of them. More than `max_batch` images go in several requests, all to
        the model that answered the first (the default may change in between). With `return_image`, each
        prediction has the 28x28 image the model saw (`seen_png` gives its PNG file)."""
        instances = [_instance(image) for image in _each(images)]
        if not instances:
            raise ValueError("no images to classify")
        predictions = []
        for start in range(0, len(instances), self.max_batch):
            chunk = {"instances": instances[start : start + self.max_batch]}
            params = {"model_id": model_id} if model_id else {}
            if return_image:
                params["return_image"] = "true"
            answer = self._call(Predictions, "POST", "/predict", json=chunk, params=params or None)
            model_id = answer.model_id
            predictions += answer.predictions
        return Predictions(model_id=model_id, predictions=predictions)

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events until `end`. A dropped connection is resumed after the last metric received."""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_event_id} if last_event_id else {})
            try:
                with self._http.stream(
                    "GET",
                    f"/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=STREAM_IDLE_S),
                ) as answer:
                    if answer.is_error or _media_type(answer) != "text/event-stream":
                        answer.read()
                        raise _error(answer, self.url) if answer.is_error else _not_the_api(answer, self.url)
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

    def watch(self, job_id: str) -> Iterator[MetricPoint]:
        """The job's metric points, one per training batch, as they are published, until it ends."""
        return (_shaped(MetricPoint, event.data, self.url) for event in self.events(job_id) if event.name == "metric")

    def wait(self, job_id: str) -> Job:
        """Block until the job has ended; the final job."""
        return _shaped(Job, next(event.data for event in self.events(job_id) if event.name == "end"), self.url)

    def _call(self, shape: type[Answer], method: str, path: str, **kwargs) -> Answer:
        """The answer, as `shape`; a ServiceError if it is an error, or not the API's JSON."""
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ServiceError(None, f"cannot reach {self.url}: {error}") from None
        if answer.is_error:
            raise _error(answer, self.url)
        if not _is_json(answer):
            raise _not_the_api(answer, self.url)
        try:
            data = answer.json()
        except ValueError:  # says JSON, is not
            raise _not_the_api(answer, self.url, "a body that is not JSON") from None
        return _shaped(shape, data, self.url, answer.status_code)


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


def seen_png(prediction: Prediction) -> bytes:
    """The PNG file of the 28x28 image the model saw, from a prediction asked for with `return_image=True`."""
    if prediction.image is None:
        raise ValueError("this prediction has no image: ask for it with predict(..., return_image=True)")
    return base64.b64decode(prediction.image.partition(",")[2])


def _each(images: ImageLike | Iterable[ImageLike]) -> list[ImageLike]:
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 3 else [images]
    if isinstance(images, (str, Path, bytes, Image.Image)):
        return [images]
    return list(images)


def _instance(image: ImageLike) -> dict[str, Any]:
    """One of /predict's `instances`: a pixel grid, or a picture's file in base64."""
    if isinstance(image, np.ndarray):
        return {"pixels": image.tolist()}
    if isinstance(image, Image.Image):
        png = io.BytesIO()
        image.save(png, format="PNG")
        image = png.getvalue()
    elif not isinstance(image, bytes):
        image = Path(image).read_bytes()
    return {"image": base64.b64encode(image).decode()}


def _error(answer: httpx.Response, url: str) -> ServiceError:
    """The API's error answer as its kind of ServiceError; any other error answer (a web server's page, a proxy's)
    as a short ServiceError that says the answer did not come from the API."""
    try:
        detail = answer.json()["detail"] if _is_json(answer) else None
    except (ValueError, TypeError, KeyError, IndexError):  # not JSON, or JSON without a detail
        detail = None
    if detail is None:
        return _not_the_api(answer, url)
    return _ERRORS.get(answer.status_code, ServiceError)(answer.status_code, detail)


def _shaped(shape: type[Answer], data: Any, url: str, status: int = 200) -> Answer:
    try:
        return shape.model_validate(data)
    except ValidationError:  # JSON of someone else's: say so, rather than show pydantic's account of it
        raise ServiceError(
            status,
            f"{url} answered {status} with JSON that is not a {shape.__name__}: not the mnist-service API, or "
            "another version of it; is the URL right?",
        ) from None


def _not_the_api(answer: httpx.Response, url: str, what: str | None = None) -> ServiceError:
    """A short error for an answer that is not the API's (its body, a web page say, is left out)."""
    said = f"{url} answered {answer.status_code} with {what or _media_type(answer) or 'no content type'}"
    if answer.status_code >= 500:  # the API's own unhandled errors are plain text too
        return ServiceError(
            answer.status_code,
            f"{said}: a server error (of mnist-service, or of a proxy in front of it), or not the mnist-service "
            "API: is the URL right?",
        )
    return ServiceError(answer.status_code, f"{said}, not the mnist-service API: is the URL right?")


def _media_type(answer: httpx.Response) -> str:
    return answer.headers.get("content-type", "").partition(";")[0].strip().lower()


def _is_json(answer: httpx.Response) -> bool:
    media_type = _media_type(answer)
    return media_type == "application/json" or media_type.endswith("+json")


def _explain(detail: Any) -> str:
    """The server's detail in one line; a validation error names each field (`learning_rate: ...`)."""
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(map(str, item.get('loc', [])[1:])) or 'body'}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
