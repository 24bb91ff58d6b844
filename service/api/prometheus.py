"""Prometheus metrics of the API process, exposed at ``GET /metrics``.

Two kinds. What this process sees as it serves (HTTP requests, predictions) is counted as it happens. What
lives in Redis (jobs, the queue, workers, the speed of running jobs) is read by ``TrainingCollector`` when
Prometheus scrapes, so it is never stale, and every API replica reports the same values.
"""

import functools
import logging
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from service.queue import jobs
from service.queue.workers import live_workers
from service.settings import Settings

log = logging.getLogger(__name__)

# No `_created` series beside each counter and histogram: Prometheus does not use them, they only add noise.
disable_created_metrics()

# prometheus-client adds the `_total` suffix to counters: these are exposed as mnist_http_requests_total and
# mnist_predictions_total.
HTTP_REQUESTS = Counter(
    "mnist_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "mnist_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
)
PREDICTIONS = Counter("mnist_predictions", "Images classified, by the model that classified them.", ["model_id"])


def observe_http_request(method: str, route: str, status: int, seconds: float) -> None:
    count, time_it = _http_series(method, route, status)
    count()
    time_it(seconds)


@functools.lru_cache(maxsize=4096)  # a few per route; bounded whatever clients send
def _http_series(method: str, route: str, status: int) -> tuple[Callable[[], None], Callable[[float], None]]:
    """The counter and the histogram of one (method, route, status), looked up once: `labels()` takes a lock and
    checks its arguments at each call, on every request."""
    return HTTP_REQUESTS.labels(method, route, str(status)).inc, HTTP_REQUEST_DURATION.labels(method, route).observe


def count_predictions(model_id: str, images: int = 1) -> None:
    """Count ``images`` classified by the model ``model_id``."""
    _predictions_of(model_id)(images)


@functools.lru_cache(maxsize=1024)
def _predictions_of(model_id: str) -> Callable[[float], None]:
    return PREDICTIONS.labels(model_id).inc


_GAUGES = {
    "mnist_redis_up": "1 if Redis answered this scrape; at 0 the other Redis-derived metrics are left out.",
    "mnist_jobs": "Jobs kept in Redis (finished ones for MNIST_RETENTION_S), by status. A running job that "
    "was canceled counts as failed here (RQ files it as stopped, with the failed ones).",
    "mnist_queue_depth": "Jobs waiting in the training queue for a worker.",
    "mnist_workers": "Workers alive on the training queue.",
    "mnist_training_images_per_second": "Training speed of each running job: images trained per second since "
    "it started, as of its latest batch.",
}


class TrainingCollector(Collector):
    """The training side as Redis holds it, read at every scrape."""

    def __init__(self, redis: Redis, settings: Settings):
        self.redis, self.settings = redis, settings

    def describe(self) -> list[GaugeMetricFamily]:
        # The names alone, so that registering the collector does not wait on Redis.
        return [GaugeMetricFamily(name, documentation) for name, documentation in _GAUGES.items()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            families = [*self._jobs_and_queue(), self._workers(), self._training_speed()]
        except RedisError as error:
            log.warning("metrics left out, Redis is unavailable: %s", error)
            families = []
        yield GaugeMetricFamily("mnist_redis_up", _GAUGES["mnist_redis_up"], value=1 if families else 0)
        yield from families

    def _jobs_and_queue(self) -> list[GaugeMetricFamily]:
        queue = jobs.training_queue(self.redis, self.settings)
        registries = {
            "queued": [queue.scheduled_job_registry, queue.deferred_job_registry],  # and the queue itself
            "running": [queue.started_job_registry],
            "succeeded": [queue.finished_job_registry],
            "failed": [queue.failed_job_registry],
            "canceled": [queue.canceled_job_registry],
        }
        depth = queue.count
        by_status = GaugeMetricFamily("mnist_jobs", _GAUGES["mnist_jobs"], labels=["status"])
        for status, group in registries.items():
            # Without RQ's clean-up: a scrape only reads.
            count = sum(registry.get_job_count(cleanup=False) for registry in group)
            by_status.add_metric([status], count + depth if status == "queued" else count)
        return [by_status, GaugeMetricFamily("mnist_queue_depth", _GAUGES["mnist_queue_depth"], value=depth)]

    def _workers(self) -> GaugeMetricFamily:
        alive = len(live_workers(self.redis, self.settings))
        return GaugeMetricFamily("mnist_workers", _GAUGES["mnist_workers"], value=alive)

    def _training_speed(self) -> GaugeMetricFamily:
        speed = GaugeMetricFamily(
            "mnist_training_images_per_second", _GAUGES["mnist_training_images_per_second"], labels=["job_id", "worker"]
        )
        registry = jobs.training_queue(self.redis, self.settings).started_job_registry
        for job_id in sorted(set(registry.get_job_ids(cleanup=False))):
            try:
                job = jobs.get(self.redis, job_id)
            except jobs.JobNotFound:  # it ended and expired since
                continue
            if job.latest and job.latest.elapsed_s > 0:
                images = job.latest.batch * job.config.batch_size
                speed.add_metric([job.id, job.worker or ""], images / job.latest.elapsed_s)
        return speed
