"""``python -m worker``: an RQ worker on the training queue."""

import itertools
import logging
import os
import socket
import sys
import threading
import time

import torch
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from service.domain.mnist import DataError
from service.logs import setup_logging
from service.queue.connection import redis_client
from service.settings import get_settings
from worker import control
from worker.ownership import JobLost, lost_reason
from worker.training import device_dataset, resolve_device, warm_up

log = logging.getLogger("worker")


class TrainingWorker(SimpleWorker):
    """RQ's in-process worker, kept warm: data, imports, kernels and CUDA context are paid for once per worker.

    RQ's forking worker would give each job a fresh child, but every child would pay the framework's warm-up
    (seconds on a CPU, CUDA's start-up on a GPU) and could not reuse data on the GPU. Running jobs in-process
    costs two things that RQ's forking worker does for us, so they are done here: heartbeats during a job
    (a thread calling RQ's own ``maintain_heartbeats``, so a killed worker's job is found abandoned within
    ``heartbeat_ttl``), and stopping a job (RQ's stop-job command and SIGTERM set a flag the job checks at every
    batch boundary). A worker cut off from Redis long enough for its job to be failed as abandoned stops that job
    when it is back, and writes no result for it (see ``worker.ownership``).
    """

    max_connection_wait_time = 5.0  # Redis away while idle: retry at least this often (RQ's default: 60 s)

    def __init__(self, *args, heartbeat_interval_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.shutdown_requested = False
        self._started = threading.Event()  # Redis records the current job as started by this worker

    def execute_job(self, job, queue):
        control.reset()
        self._started.clear()
        execution = self.prepare_execution(job)
        done = threading.Event()
        beats = threading.Thread(target=self._beat, args=(job, execution, done), name="heartbeat", daemon=True)
        beats.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beats.join()
        self.set_state(WorkerStatus.IDLE)

    def _beat(self, job, execution, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_interval_s):
            try:
                # Away from Redis for more than three heartbeats, this worker may have had its job failed as
                # abandoned (or handed to another worker): then it stops the job rather than beat for it.
                if self._started.is_set() and (reason := lost_reason(job)):
                    log.warning("job %s is no longer this worker's (%s): stopping it", job.id, reason)
                    control.request_stop(f"job {job.id} is no longer this worker's ({reason})")
                    return
                self.maintain_heartbeats(job, execution)
            except RedisError as error:  # Redis away: keep training, beat again when it is back
                log.warning("heartbeat failed: %s", error)

    def prepare_job_execution(self, job, remove_from_intermediate_queue: bool = False) -> None:
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        self._started.set()  # from now on, a job Redis no longer records as this worker's was taken from it

    def handle_job_success(self, job, queue, started_job_registry, execution):
        if self._discard_if_lost(job, execution):
            return
        super().handle_job_success(job, queue, started_job_registry, execution)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        if self._discard_if_lost(job, execution):
            return
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def _discard_if_lost(self, job, execution) -> bool:
        """A job that stopped being this worker's keeps the end that was written for it (failed as abandoned, or
        a retry that another worker runs): this worker's late result is logged and dropped, not written."""
        if not self._started.is_set():  # it failed before it started: RQ's own handling
            return False
        try:
            reason = lost_reason(job)
        except RedisError:  # cannot tell: RQ's own handling, which needs Redis too, decides
            return False
        if reason is None:
            return False
        log.warning("job %s is no longer this worker's (%s): its late result is discarded", job.id, reason)
        with self.connection.pipeline() as pipeline:
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)  # this worker's own records only
            pipeline.execute()
        return True

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        return int(3 * self.heartbeat_interval_s) + 1

    def handle_exception(self, job, *exc_info):
        """A job stopped by RQ's stop-job command (a user's cancel) ended as asked: one INFO line, rather than
        RQ's ERROR with the traceback (RQ still records the job as stopped, shown as canceled). Anything else,
        a job interrupted by the worker's shutdown included, is RQ's to log as the failure it is."""
        error = exc_info[1]
        if isinstance(error, JobLost):  # logged where it is discarded (see _discard_if_lost)
            return
        # RQ's stop-job command sets _stopped_job_id before kill_horse; handle_job_failure reads and clears it.
        if isinstance(error, control.JobInterrupted) and getattr(self, "_stopped_job_id", None) == job.id:
            log.info("job %s canceled by request at batch %s", job.id, error.batch)
            return
        super().handle_exception(job, *exc_info)

    def kill_horse(self, sig=None):
        """RQ's stop-job command (and a second SIGTERM) end up here: stop the job at the next batch."""
        control.request_stop("canceled")

    def request_stop(self, signum, frame):
        """SIGTERM: take no new job, and end the current one at the next batch, failed as 'worker shut down'."""
        self.shutdown_requested = True
        control.request_stop("worker shut down before the job finished; submit it again")
        super().request_stop(signum, frame)


def warm_data_and_kernels() -> None:
    settings = get_settings()
    # On a GPU, let cuDNN time its algorithms once per shape; the warm-up pays for the tutorial's shapes.
    torch.backends.cudnn.benchmark = True
    try:
        warm_up(device_dataset(settings.data_dir, resolve_device("auto")))
    except DataError as error:  # jobs will fail with this message until the data is there; stay up
        log.warning("MNIST data not ready: %s", error)


def torch_threads(setting: int | None) -> int:
    """MNIST_TORCH_THREADS, or every core this process may run on (a worker started alone)."""
    if setting:
        return setting
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_level)
    if not settings.redis_url:
        sys.exit("MNIST_REDIS_URL is not set: point the worker at Redis (`mnist-service run` sets it for you)")
    torch.set_num_threads(torch_threads(settings.torch_threads))
    warm_data_and_kernels()
    connection = redis_client(settings)  # RQ lengthens its timeout to cover its blocking wait for a job
    # RQ's work loop gives up on a Redis error it meets outside its dequeue (e.g. just after a job).
    # A Redis outage must not take the worker down, so start a fresh loop (under a fresh name, the old
    # registration may linger until its TTL) until asked to shut down.
    for generation in itertools.count():
        worker = TrainingWorker(
            [settings.queue_name],
            name=f"{socket.gethostname()}.{os.getpid()}" + (f".{generation}" if generation else ""),
            connection=connection,
            serializer=JSONSerializer,
            heartbeat_interval_s=settings.heartbeat_s,
            worker_ttl=settings.worker_ttl_s,  # a dead idle worker leaves the registry within this
            maintenance_interval=settings.worker_ttl_s,  # and its job is cleaned up by any other worker too
        )
        try:
            worker.work(with_scheduler=False)
        except RedisError as error:
            log.warning("lost Redis: %s", error)
        if worker.shutdown_requested:
            return
        log.warning("the work loop ended without a shutdown request; starting again in 2 s")
        time.sleep(2)


if __name__ == "__main__":
    main()
