"""The RQ entry point: glue of data, network, training loop, metric publisher and model store."""

import math
import time

from redis.exceptions import RedisError
from rq import Queue, get_current_job
from rq.timeouts import JobTimeoutException

from service.domain.mnist import DataError
from service.domain.model_store import delete_model, new_model_metadata, save_model
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from service.settings import get_settings
from worker import control
from worker.ownership import JobLost, ensure_still_mine, lost_reason
from worker.publisher import MetricPublisher
from worker.training import TrainingError, device_dataset, evaluate, resolve_device, train


def train_job(config: dict) -> dict:
    """Train one model from ``config`` (a TrainingConfig as JSON); return what the job's record shows."""
    job = get_current_job()
    # RQ's timeout, read as RQ reads it; checked between batches too (see worker.control).
    control.start_deadline(job.timeout or Queue.DEFAULT_TIMEOUT)
    try:
        try:
            outcome = _train(job, TrainingConfig.model_validate(config))
        except JobTimeoutException as timeout:  # RQ's SIGALRM: the same message as the check between batches
            raise control.timed_out() from timeout
    except JobLost:
        raise
    except Exception as error:
        if _lost(job):  # the job's end is already written (failed as abandoned): not ours to rewrite
            raise JobLost(f"job {job.id} is no longer this worker's; its failure is discarded: {error}") from error
        # RQ keeps the traceback; the user gets one readable line.
        known = isinstance(error, (DataError, TrainingError, control.JobInterrupted))
        job.meta["error"] = str(error) if known else f"{type(error).__name__}: {error}"
        job.save_meta()
        raise
    job.meta.update(outcome)
    job.save_meta()
    return outcome


def _train(job, config: TrainingConfig) -> dict:
    settings = get_settings()
    attempt = config.retries - (job.retries_left or 0) + 1  # RQ counts retries down
    job.meta["attempt"] = attempt
    job.save_meta()
    device = resolve_device(config.device)
    data = device_dataset(settings.data_dir, device)
    network = build_network(config).to(device)
    progress: dict = {}
    started = time.perf_counter()
    with MetricPublisher(
        job.connection, job.id, settings.retention_s, close_timeout_s=settings.metrics_flush_timeout_s
    ) as publisher:
        for point in train(network, config, data, progress):  # a loss that is not finite ends it (TrainingError)
            point.attempt = attempt
            publisher.publish(point)
            control.check(point.batch)  # canceled, shutting down or past the timeout: stop between two batches
    train_seconds = time.perf_counter() - started
    test_loss, test_accuracy = evaluate(network, data.test_x, data.test_y)
    if not math.isfinite(test_loss):
        raise TrainingError(
            f"training diverged: the loss on the test set is {test_loss} after the last batch; the model is not "
            "saved: lower the learning_rate"
        )
    metadata = new_model_metadata(
        network,
        config,
        job_id=job.id,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        train_seconds=train_seconds,
        device=device,
    )
    # A job that stopped being this worker's (failed as abandoned while it could not reach Redis) saves nothing.
    patience_s = settings.metrics_flush_timeout_s  # Redis away at the end: wait for it as long as for the points
    ensure_still_mine(job, patience_s)
    save_model(settings.model_dir, network, metadata, make_default=config.make_default)
    try:
        ensure_still_mine(job, patience_s)  # lost while saving: take the model back out
    except JobLost:
        delete_model(settings.model_dir, metadata.id)
        raise
    return {
        "model_id": metadata.id,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": train_seconds,
        "batches": progress["batches"],  # fewer than the config's total_batches when stopped_early
        "stopped_early": progress["stopped_early"],  # the holdout reached the target_accuracy
    }


def _lost(job) -> bool:
    """Whether the job is known to be no longer this worker's (False when Redis cannot say)."""
    try:
        return lost_reason(job) is not None
    except RedisError:
        return False
