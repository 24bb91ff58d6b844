"""Whether the job a worker runs is still its own to finish.

A worker that cannot reach Redis for longer than three heartbeats (a network partition, a process stopped and
resumed, a machine suspended) has its job failed as abandoned by the API's reaper, or queued again for another
worker if it has retries left. When such a worker comes back, the job's end is already written: the worker must
not write another one (a `failed` job turning `succeeded`), nor save a model for it, nor touch a retry that
another worker now runs. So it asks Redis before each heartbeat and before it writes anything at the end.
"""

import logging
import time

from redis.exceptions import RedisError
from rq.job import Job, JobStatus

log = logging.getLogger(__name__)


class JobLost(Exception):
    """The job stopped being this worker's while it ran; its result is discarded."""


def lost_reason(job: Job) -> str | None:
    """Why ``job`` (as this worker's process holds it) is no longer this worker's to finish, or None while it is:
    Redis still records it as started, by this worker. One round trip."""
    status, worker = job.connection.hmget(job.key, ["status", "worker_name"])
    if status is None:
        return "it no longer exists"
    status, worker = status.decode(), (worker or b"").decode()
    if status != JobStatus.STARTED.value:
        return f"it is {status} now: it was taken from this worker while the worker could not reach Redis"
    if worker != job.worker_name:
        return f"worker {worker} runs it now"
    return None


def ensure_still_mine(job: Job, patience_s: float = 0.0, retry_s: float = 0.5) -> None:
    """Raise JobLost unless ``job`` is still this worker's. While Redis cannot say, ask again for ``patience_s``
    seconds (then its error is raised): a job that finished during a short outage keeps its result, and one whose
    outage was long enough for the reaper is found failed once Redis is back."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            reason = lost_reason(job)
            break
        except RedisError as error:
            if time.monotonic() >= deadline:
                raise
            log.warning("cannot check that job %s is still this worker's, will retry: %s", job.id, error)
            time.sleep(retry_s)
    if reason:
        raise JobLost(f"job {job.id} is no longer this worker's ({reason}); its result is discarded")
