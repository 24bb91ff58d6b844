"""Publishes a job's metric points to its Redis Stream from a background thread.

Training hands each point over and moves on: it never waits for a network round trip. The thread sends
whatever has piled up in one pipelined round trip, and keeps points it could not send (Redis down) to send
them when Redis returns, so no point is lost or reordered. Each point's stream id is ``<attempt>-<batch>``,
so a resend after a half-applied pipeline cannot duplicate a point: Redis refuses an id it already holds.
"""

import logging
import queue
import threading
import time

from redis import Redis
from redis.exceptions import RedisError

from service.domain.metric_point import MetricPoint
from service.queue import metric_stream

log = logging.getLogger(__name__)
_CLOSE = object()


class MetricPublisher:
    def __init__(
        self,
        redis: Redis,
        job_id: str,
        retention_s: int,
        close_timeout_s: float = 30,
        retry_s: float = 0.5,
        linger_s: float = 0.25,
        max_points: int = metric_stream.MAX_POINTS,
    ):
        self._redis, self._key, self._linger_s = redis, metric_stream.stream_key(job_id), linger_s
        self._job_id, self._max_points = job_id, max_points
        self._retention_s, self._retry_s, self._close_timeout_s = retention_s, retry_s, close_timeout_s
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._closing = threading.Event()  # ends a linger at once: the job's end does not wait for it
        self._thread = threading.Thread(target=self._run, name=f"metrics-{job_id}", daemon=True)

    def __enter__(self) -> "MetricPublisher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._closing.set()
        self._inbox.put(_CLOSE)
        self._thread.join(self._close_timeout_s)
        if self._thread.is_alive():  # Redis still away: the job ends, the thread keeps trying (ids dedupe)
            log.warning("metric points of %s not yet published; still retrying in the background", self._key)

    def publish(self, point: MetricPoint) -> None:
        self._inbox.put(point)

    def _run(self) -> None:
        pending: list[MetricPoint] = []
        closing = False
        while not (closing and not pending):
            if not pending and not closing:
                pending.append(self._inbox.get())  # sleep until there is something to send
                if pending[0] is not _CLOSE:
                    # ... then let the points of a quarter second come: on a 2-core machine every wake-up of
                    # this thread takes a core from training's thread pool, which then waits for it; so it
                    # wakes about 4 times a second, not once per batch. The job's end cuts the wait short.
                    self._closing.wait(self._linger_s)
            while True:  # take everything else that is waiting, without blocking
                try:
                    pending.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if _CLOSE in pending:
                pending.remove(_CLOSE)
                closing = True
            if pending and self._send(pending):
                pending = []
            elif pending:
                time.sleep(self._retry_s)

    def _send(self, points: list[MetricPoint]) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        for point in points:
            metric_stream.append(pipe, self._job_id, point, self._max_points)
        pipe.expire(self._key, self._retention_s)
        try:
            results = pipe.execute(raise_on_error=False)
        except RedisError as error:
            log.warning("could not publish %d metric points, will retry: %s", len(points), error)
            return False
        for result in results:
            if isinstance(result, RedisError) and "equal or smaller" not in str(result):  # not "already there"
                log.warning("could not publish metric points, will retry: %s", result)
                return False
        return True
