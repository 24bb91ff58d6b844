"""The training workers, as RQ registers them on the queue."""

from redis import Redis
from rq import Worker

from service.queue.jobs import training_queue
from service.settings import Settings


def live_workers(redis: Redis, settings: Settings) -> list[Worker]:
    """The workers on the training queue that are alive: seen recently, wherever they run.

    A worker's key expires unless its heartbeats renew it, so a dead worker drops out of RQ's list by itself.
    """
    return Worker.all(queue=training_queue(redis, settings))
