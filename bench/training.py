"""Training: the bare loop (the training module called directly) against the same config through the service."""

import statistics
import time
from pathlib import Path

import torch

from bench.stack import wait_for_job
from service.domain.model_metadata import ModelMetadata
from service.domain.model_store import new_model_metadata, save_model
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from worker.training import device_dataset, evaluate, resolve_device, train, warm_up


def bare_run(config: TrainingConfig, data_dir: Path) -> dict:
    """What a hand-written loop gets: train, then test on the full 10,000 images; no Redis, no HTTP."""
    data = device_dataset(data_dir, resolve_device(config.device))
    network = build_network(config).to(data.train_x.device)
    started = time.perf_counter()
    for _ in train(network, config, data):
        pass
    trained = time.perf_counter()
    _loss, accuracy = evaluate(network, data.test_x, data.test_y)
    tested = time.perf_counter()
    return {
        "train_s": trained - started,
        "test_s": tested - trained,
        "test_accuracy": accuracy,
        "images_per_s": config.total_batches * config.batch_size / (trained - started),
    }


def service_run(client, config: TrainingConfig) -> dict:
    """The same config through POST /jobs → queue → worker → metrics in Redis → weights saved."""
    started = time.perf_counter()
    job = client.post("/jobs", json=config.model_dump(mode="json", exclude_defaults=True)).json()
    job = wait_for_job(client, job["id"])
    latency = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"benchmark job failed: {job['error']}")
    return {
        "train_s": job["train_seconds"],
        "latency_s": latency,
        "test_accuracy": job["test_accuracy"],
        "images_per_s": config.total_batches * config.batch_size / job["train_seconds"],
    }


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def overhead(client, data_dir: Path, config: TrainingConfig, repeats: int) -> dict:
    """Bare and service runs interleaved (same seeds), so drift in the machine's speed hits both alike."""
    warm_up(device_dataset(data_dir, resolve_device(config.device)))
    bare, served = [], []
    for seed in range(repeats):
        seeded = config.model_copy(update={"seed": seed})
        bare.append(bare_run(seeded, data_dir))
        served.append(service_run(client, seeded))
    return {
        "bare": bare,
        "service": served,
        "bare_images_per_s": median(bare, "images_per_s"),
        "service_images_per_s": median(served, "images_per_s"),
        "bare_train_test_s": median([{"t": b["train_s"] + b["test_s"]} for b in bare], "t"),
        "service_latency_s": median(served, "latency_s"),
        "bare_accuracy": statistics.mean(b["test_accuracy"] for b in bare),
        "service_accuracy": statistics.mean(s["test_accuracy"] for s in served),
    }


def preset_runs(client, preset: str, seeds: list[int]) -> list[dict]:
    return [service_run(client, TrainingConfig(preset=preset, seed=seed)) for seed in seeds]


def time_to_accuracy_curve(data_dir: Path, preset: str, fractions: list[float]) -> list[dict]:
    """Full-test accuracy against training time, for the preset shortened or lengthened (bare loop)."""
    base = TrainingConfig(preset=preset)
    curve = []
    for fraction in fractions:
        config = TrainingConfig(preset=preset, epochs=base.epochs * fraction, seed=0)
        run = bare_run(config, data_dir)
        curve.append({"epochs": config.epochs, "train_s": run["train_s"], "test_accuracy": run["test_accuracy"]})
    return curve


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return "cpu"


def fast_against_handwritten(client, data_dir: Path, seeds: list[int]) -> dict:
    """The `fast` preset through the service against the hand-written loop (bench.handwritten), interleaved per
    seed: the preset's training time over the loop's, from the same run."""
    from bench import handwritten

    handwritten.run(data_dir, seed=0, epochs=1, batch_size=128)  # its first run pays torch's one-time costs
    loops, fast = [], []
    for seed in seeds:
        loops.append(handwritten.run(data_dir, seed=seed))
        fast.append(service_run(client, TrainingConfig(preset="fast", seed=seed)))
    return {
        "handwritten": loops,
        "fast": fast,
        "handwritten_train_s": median(loops, "train_s"),
        "fast_train_s": median(fast, "train_s"),
        "ratio": median(fast, "train_s") / median(loops, "train_s"),
    }


def _concurrent_job(args: tuple) -> dict:
    config, data_dir, threads = args
    torch.set_num_threads(threads)
    return bare_run(config, data_dir)


def threads_per_worker(data_dir: Path, config: TrainingConfig, workers: int = 2) -> dict:
    """Two workers' jobs at once on one machine, as `mnist-service run --workers 2` runs them: each worker process
    with torch's threads = the cores divided among the workers (MNIST_TORCH_THREADS' default under `run`) against
    all the cores each (a worker started alone). Throughput: the images of all jobs over the wall time."""
    import multiprocessing
    import os

    cores = len(os.sched_getaffinity(0))
    results = {}
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_concurrent_job, [(config.model_copy(update={"train_batches": 5}), data_dir, 1)] * workers)
        for label, threads in (("shared", max(1, cores // workers)), ("all_cores", cores)) * 2:  # interleaved
            started = time.perf_counter()
            pool.map(
                _concurrent_job, [(config.model_copy(update={"seed": n}), data_dir, threads) for n in range(workers)]
            )
            wall = time.perf_counter() - started
            results.setdefault(label, []).append(workers * config.total_batches * config.batch_size / wall)
    return {
        "workers": workers,
        "cores": cores,
        "threads": {"shared": max(1, cores // workers), "all_cores": cores},
        "images_per_s": {label: statistics.median(runs) for label, runs in results.items()},
    }


def train_model(model_dir: Path, data_dir: Path, config: TrainingConfig) -> ModelMetadata:
    """Train, evaluate and save a model in this process, with the worker's own training loop: what a job does
    (worker/task.py) without Redis."""
    config = config.resolved()
    device = resolve_device(config.device)
    data = device_dataset(data_dir, device)
    network = build_network(config).to(device)
    started = time.perf_counter()
    for _ in train(network, config, data):
        pass
    train_seconds = time.perf_counter() - started
    test_loss, test_accuracy = evaluate(network, data.test_x, data.test_y)
    metadata = new_model_metadata(
        network,
        config,
        job_id=None,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        train_seconds=train_seconds,
        device=device,
    )
    save_model(model_dir, network, metadata, make_default=config.make_default)
    return metadata
