"""``python -m worker``: an RQ worker on the training queue."""

import logging
import os
import socket
import sys

from redis import Redis
from rq import Worker
from rq.serializers import JSONSerializer

from service.data import DataError
from service.settings import get_settings
from worker.training import host_dataset

log = logging.getLogger("worker")


class TrainingWorker(Worker):
    """RQ's forking worker, with MNIST loaded once in this (parent) process.

    Each job runs in a forked child that inherits the loaded tensors, imports and all, so a job pays neither
    the start-up nor the data load; the parent never touches CUDA, so every child can initialise it.
    """

    def execute_job(self, job, queue):
        warm_dataset()
        super().execute_job(job, queue)


def warm_dataset() -> None:
    try:
        host_dataset(get_settings().data_dir)
    except DataError as error:  # the job will fail with this message; the worker stays up for the next
        log.warning("MNIST data not ready: %s", error)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if not settings.redis_url:
        sys.exit("MNIST_REDIS_URL is not set: point the worker at Redis (`mnist-service run` sets it for you)")
    warm_dataset()
    worker = TrainingWorker(
        [settings.queue_name],
        name=f"{socket.gethostname()}.{os.getpid()}",
        connection=Redis.from_url(settings.redis_url),
        serializer=JSONSerializer,
    )
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()
