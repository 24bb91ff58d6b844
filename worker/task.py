"""The RQ entry point: glue of data, network, training loop, metric publisher and model store."""

import platform
import time
from datetime import UTC, datetime

import torch
from rq import get_current_job

import service
from service.domain.mnist import DataError
from service.domain.model_store import ModelMetadata, new_model_id, save_model
from service.domain.network import build_network, parameter_count
from service.domain.training_config import TrainingConfig
from service.settings import get_settings
from worker import control
from worker.publisher import MetricPublisher
from worker.training import TrainingError, device_dataset, evaluate, resolve_device, train


def train_job(config: dict) -> dict:
    """Train one model from ``config`` (a TrainingConfig as JSON); return what the job's record shows."""
    job = get_current_job()
    try:
        outcome = _train(job, TrainingConfig.model_validate(config))
    except Exception as error:
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
    started = time.perf_counter()
    with MetricPublisher(
        job.connection, job.id, settings.retention_s, close_timeout_s=settings.metrics_flush_timeout_s
    ) as publisher:
        for point in train(network, config, data):
            point.attempt = attempt
            publisher.publish(point)
            control.check(point.batch)  # canceled or shutting down: stop here, between two batches
    train_seconds = time.perf_counter() - started
    test_loss, test_accuracy = evaluate(network, data.test_x, data.test_y)
    created_at = datetime.now(UTC)
    metadata = ModelMetadata(
        id=new_model_id(created_at),
        job_id=job.id,
        created_at=created_at,
        config=config,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        parameters=parameter_count(network),
        train_seconds=train_seconds,
        device=str(device),
        versions={
            "mnist-service": service.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    )
    save_model(settings.model_dir, network, metadata)
    return {
        "model_id": metadata.id,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_seconds": train_seconds,
    }
