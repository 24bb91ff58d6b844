"""Training jobs as the API sees them: RQ jobs on the training queue, plus their metric streams.

RQ owns the state (status, timestamps, registries, meta); this module only enqueues the project's own task
and maps RQ's view onto the public one. Jobs are serialised as JSON, never pickled.
"""

from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.serializers import JSONSerializer

from service.domain.training_config import STORED, TrainingConfig
from service.queue import metric_stream
from service.schemas.jobs import ENDED, Job, JobList, JobStatus, MetricsPage, Progress
from service.settings import Settings

TASK = "worker.task.train_job"  # by dotted path: the API never imports the worker
JOB_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
INDEX_KEY = "mnist:jobs"  # every job id, scored by submission time: the listing's order

PUBLIC_STATUS: dict[RQStatus, JobStatus] = {
    RQStatus.CREATED: "queued",
    RQStatus.QUEUED: "queued",
    RQStatus.DEFERRED: "queued",
    RQStatus.SCHEDULED: "queued",
    RQStatus.READY_TO_ENQUEUE: "queued",
    RQStatus.RATE_LIMITED: "queued",
    RQStatus.STARTED: "running",
    RQStatus.FINISHED: "succeeded",
    RQStatus.FAILED: "failed",
    RQStatus.STOPPED: "canceled",
    RQStatus.CANCELED: "canceled",
}


class JobNotFound(LookupError):
    pass


class JobConflict(Exception):
    """The job is in a state that does not allow the operation."""


class QueueFull(Exception):
    """As many jobs wait in the queue as ``MNIST_MAX_QUEUED_JOBS`` allows: a new one is refused until some start."""

    retry_after_s = 30  # what the answer's Retry-After says: about the time a short job takes

    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(
            f"the training queue is full: {queued} jobs are waiting to start and at most {limit} may "
            f"({Settings.env_name('max_queued_jobs')}); retry later, when some have started"
        )
        self.queued, self.limit = queued, limit


def training_queue(redis: Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=redis, serializer=JSONSerializer)


def submit(redis: Redis, settings: Settings, config: TrainingConfig) -> Job:
    """Queue a training job; QueueFull if ``settings.max_queued_jobs`` already wait (concurrent submissions
    may each pass the count, so the queue may go past the limit by as many as arrive at the same moment)."""
    config = config.resolved()
    queue = training_queue(redis, settings)
    queued = queue.count
    if queued >= settings.max_queued_jobs:
        raise QueueFull(queued, settings.max_queued_jobs)
    rq_job = queue.enqueue(
        TASK,
        config.model_dump(mode="json"),
        job_timeout=settings.job_timeout_s,
        result_ttl=settings.retention_s,
        failure_ttl=settings.retention_s,
        description=f"train {config.preset}: {config.total_batches} batches",
        retry=Retry(max=config.retries) if config.retries else None,
    )
    pipe = redis.pipeline()
    pipe.zadd(INDEX_KEY, {rq_job.id: rq_job.created_at.timestamp()})
    pipe.zremrangebyscore(INDEX_KEY, "-inf", rq_job.created_at.timestamp() - settings.retention_s)
    pipe.execute()
    return _public(rq_job, latest=None)


def get(redis: Redis, job_id: str) -> Job:
    rq_job = _fetch(redis, job_id)
    return _public(rq_job, metric_stream.latest_many(redis, [job_id])[0])


def list_jobs(redis: Redis, offset: int, limit: int) -> JobList:
    ids = [i.decode() for i in redis.zrevrange(INDEX_KEY, offset, offset + limit - 1)]
    rq_jobs = [j for j in RQJob.fetch_many(ids, connection=redis, serializer=JSONSerializer) if j is not None]
    latest = metric_stream.latest_many(redis, [j.id for j in rq_jobs])
    jobs = [_public(j, point) for j, point in zip(rq_jobs, latest, strict=True)]
    return JobList(jobs=jobs, total=redis.zcard(INDEX_KEY), offset=offset, limit=limit)


def metrics(redis: Redis, job_id: str, since: str | None, limit: int) -> MetricsPage:
    status = PUBLIC_STATUS[_fetch(redis, job_id).get_status(refresh=False)]
    points, cursor = metric_stream.read(redis, job_id, since, limit)
    return MetricsPage(points=[point for _, point in points], cursor=cursor, status=status)


def cancel(redis: Redis, job_id: str) -> Job:
    """A queued job leaves the queue and never runs; a running one stops at its next batch boundary."""
    rq_job = _fetch(redis, job_id)
    status = PUBLIC_STATUS[rq_job.get_status(refresh=False)]
    if status in ENDED:
        raise JobConflict(f"job {job_id} has already ended: {status}")
    if status == "queued":
        rq_job.cancel()  # RQ's own: out of the queue, into the canceled registry
    # A worker may have taken it meanwhile (or already had): RQ's stop-job command reaches that worker, whose
    # job then stops between two batches and ends as stopped (shown as canceled), keeping its metrics.
    rq_job.refresh()
    if rq_job.worker_name and rq_job.get_status(refresh=False) == RQStatus.STARTED:
        try:
            send_stop_job_command(redis, job_id, serializer=JSONSerializer)
        except InvalidJobOperation:  # it ended in between
            pass
    return get(redis, job_id)


def fail_abandoned(redis: Redis, settings: Settings) -> None:
    """Jobs whose worker stopped sending heartbeats (killed, lost) are failed, or retried if they asked for it.

    RQ's own registry cleanup does it; the API runs it on a short period so that no job stays 'running'
    even when no other worker is left to run RQ's maintenance.
    """
    training_queue(redis, settings).started_job_registry.cleanup()


def _fetch(redis: Redis, job_id: str) -> RQJob:
    try:
        rq_job = RQJob.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except NoSuchJobError:
        raise JobNotFound(f"no job {job_id!r}") from None
    if rq_job.func_name != TASK:  # some other RQ job in the same Redis is not ours to show
        raise JobNotFound(f"no job {job_id!r}")
    return rq_job


def _public(rq_job: RQJob, latest) -> Job:
    config = TrainingConfig.model_validate(rq_job.args[0], context={STORED: True})
    status = PUBLIC_STATUS[rq_job.get_status(refresh=False)]
    meta = rq_job.meta
    return Job(
        id=rq_job.id,
        status=status,
        config=config,
        created_at=_utc(rq_job.created_at),
        started_at=_utc(rq_job.started_at),
        finished_at=_utc(rq_job.ended_at),
        progress=Progress(batch=latest.batch if latest else 0, total_batches=config.total_batches),
        latest=latest,
        worker=rq_job.worker_name or None,
        attempt=meta.get("attempt", 1),
        model_id=meta.get("model_id"),
        test_accuracy=meta.get("test_accuracy"),
        test_loss=meta.get("test_loss"),
        train_seconds=meta.get("train_seconds"),
        batches=meta.get("batches"),
        stopped_early=meta.get("stopped_early"),
        error=_error(rq_job, status),
    )


def _error(rq_job: RQJob, status: JobStatus) -> str | None:
    if status not in ("failed", "canceled"):
        return None
    if "error" in rq_job.meta:  # the task's own, readable message
        return rq_job.meta["error"]
    result = rq_job.latest_result()
    detail = (result.exc_string or "").strip().splitlines()[-1] if result and result.exc_string else ""
    if "AbandonedJobError" in detail:
        return "the worker died while training (it stopped sending heartbeats); the job was abandoned"
    if status == "canceled":
        return "canceled"
    return detail or "failed for an unknown reason"


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
