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
from worker.training import device_dataset, resolve_device, warm_up

log = logging.getLogger("worker")


class TrainingWorker(SimpleWorker):
    """RQ's in-process worker, kept warm: data, imports, kernels and CUDA context are paid for once per worker.

    RQ's forking worker would give each job a fresh child, but every child would pay the framework's warm-up
    (seconds on a CPU, CUDA's start-up on a GPU) and could not reuse data on the GPU. Running jobs in-process
    costs two things that RQ's forking worker does for us, so they are done here: heartbeats during a job
    (a thread calling RQ's own ``maintain_heartbeats``, so a killed worker's job is found abandoned within
    ``heartbeat_ttl``), and stopping a job (RQ's stop-job command and SIGTERM set a flag the job checks at every
    batch boundary).
    """

    max_connection_wait_time = 5.0  # Redis away while idle: retry at least this often (RQ's default: 60 s)

    def __init__(self, *args, heartbeat_interval_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.shutdown_requested = False

    def execute_job(self, job, queue):
        control.reset()
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
                self.maintain_heartbeats(job, execution)
            except RedisError as error:  # Redis away: keep training, beat again when it is back
                log.warning("heartbeat failed: %s", error)

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        return int(3 * self.heartbeat_interval_s) + 1

    def handle_exception(self, job, *exc_info):
        """A job stopped by RQ's stop-job command (a user's cancel) ended as asked: one INFO line, rather than
        RQ's ERROR with the traceback (RQ still records the job as stopped, shown as canceled). Anything else,
        a job interrupted by the worker's shutdown included, is RQ's to log as the failure it is."""
        error = exc_info[1]
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


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_level)
    if not settings.redis_url:
        sys.exit("MNIST_REDIS_URL is not set: point the worker at Redis (`mnist-service run` sets it for you)")
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
