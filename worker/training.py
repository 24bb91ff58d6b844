"""The training loop itself, free of Redis: it yields one metric point per batch.

Kept bare so that it is tested and benchmarked on its own; the service's overhead is measured against it.
"""

import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.domain.metric_point import MetricPoint
from service.domain.mnist import IMAGE_SIDE, load_mnist
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from worker.augmentation import BatchAugmenter

EVALUATION_CHUNK = 2000  # images per forward pass when a whole set is scored: bounded memory on any device


class TrainingError(RuntimeError):
    """A job that cannot run as configured; the message is shown to the user."""


@dataclass(frozen=True)
class Dataset:
    train_x: torch.Tensor  # float32 (60000, 1, 28, 28) in 0..1
    train_y: torch.Tensor  # int64 (60000,)
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device: torch.device) -> "Dataset":
        return Dataset(*(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)))


@lru_cache(maxsize=1)
def host_dataset(data_dir: Path) -> Dataset:
    """The verified MNIST arrays as float tensors in main memory, made once per process."""
    mnist = load_mnist(data_dir)

    def images(raw: np.ndarray) -> torch.Tensor:
        # torch converts in one pass and divides in place: 5x faster than numpy's astype and divide, which make
        # two 188 MB arrays (a second of every worker's start); the same float32 values.
        return torch.tensor(raw, dtype=torch.float32).div_(255.0).reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE)

    def labels(raw: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(raw.astype(np.int64))

    return Dataset(
        images(mnist.train_images), labels(mnist.train_labels), images(mnist.test_images), labels(mnist.test_labels)
    )


@lru_cache(maxsize=2)
def device_dataset(data_dir: Path, device: torch.device) -> Dataset:
    """The dataset resident on ``device`` (on a GPU: no host-to-device copy per batch), kept for later jobs."""
    return host_dataset(data_dir).to(device)


def warm_up(data: Dataset) -> None:
    """A few batches of the tutorial, so that the first real job finds the kernels chosen and compiled."""
    config = TrainingConfig(train_batches=5, seed=0)
    network = build_network(config).to(data.train_x.device)
    for _ in train(network, config, data):
        pass
    # The final test's shapes: one chunk of it is enough (the whole 10,000 images cost 0.4 s of a CPU worker's start).
    evaluate(network, data.test_x[:EVALUATION_CHUNK], data.test_y[:EVALUATION_CHUNK])


def resolve_device(requested: str) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise TrainingError("device 'cuda' was requested but this worker has no CUDA GPU; use 'auto' or 'cpu'")
    return torch.device("cpu")


def make_optimizer(network: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    momentum = 0.9 if config.optimizer == "momentum" else 0.0
    return torch.optim.SGD(network.parameters(), lr=config.learning_rate, momentum=momentum)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainingConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if config.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.learning_rate,
            total_steps=config.total_batches,
            pct_start=0.25,
            cycle_momentum=config.optimizer != "sgd",
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _batches(count: int, size: int, generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Index batches over ``count`` items, forever, with a fresh permutation for every pass."""
    while True:
        permutation = torch.randperm(count, generator=generator).to(device)
        for start in range(0, count - size + 1, size):
            yield permutation[start : start + size]


class _PendingPoints:
    """Each batch's numbers, still on the device, become points once they reach the host.

    On a GPU the copy is asynchronous (pinned memory + an event), so training never waits for it: the loop
    runs ahead and the points follow a few batches behind. On the CPU there is nothing to wait for.
    """

    def __init__(self, device: torch.device):
        self._asynchronous = device.type == "cuda"
        self._queue: deque = deque()

    def push(self, batch: int, elapsed_s: float, stats: torch.Tensor) -> None:
        event = None
        if self._asynchronous:
            stats = torch.empty(stats.shape, pin_memory=True).copy_(stats, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        self._queue.append((batch, elapsed_s, stats, event))

    def ready(self, wait: bool = False) -> Iterator[MetricPoint]:
        while self._queue and (wait or self._queue[0][3] is None or self._queue[0][3].query()):
            batch, elapsed_s, stats, event = self._queue.popleft()
            if event is not None:
                event.synchronize()
            loss, accuracy, *validation = stats.tolist()
            point = MetricPoint(batch=batch, loss=loss, accuracy=accuracy, elapsed_s=elapsed_s)
            if validation:
                point.val_loss, point.val_accuracy = validation
            yield point


def train(
    network: nn.Module, config: TrainingConfig, data: Dataset, outcome: dict | None = None
) -> Iterator[MetricPoint]:
    """Train ``network`` in place, one batch at a time, yielding each batch's point as soon as it is known.

    Like the tutorial: shuffled batches (a fresh permutation every epoch), and every ``test_every`` batches
    (and after the last) the loss and accuracy on the next ``test_batch_size`` test images. With a ``holdout``,
    the last ``holdout`` training images are not trained on and are the validation set instead of test images;
    with a ``target_accuracy`` too, training stops once the accuracy on them reaches it. ``outcome``, if given,
    receives ``batches`` (the batches trained) and ``stopped_early``.
    """
    config = config.resolved()
    device = data.train_x.device
    torch.manual_seed(config.seed)
    order = torch.Generator().manual_seed(config.seed)
    augment = BatchAugmenter(config.augmentation, config.seed, device)  # training batches only, never validation
    optimizer = make_optimizer(network, config)
    schedule = make_schedule(optimizer, config)
    trained_on = len(data.train_y) - config.holdout
    train_batches = _batches(trained_on, config.batch_size, order, device)
    test_batches = _batches(len(data.test_y), min(config.test_batch_size, len(data.test_y)), order, device)
    holdout = (data.train_x[trained_on:], data.train_y[trained_on:]) if config.holdout else None
    pending = _PendingPoints(device)
    # Channels-last is oneDNN's and cuDNN's preferred layout for convolutions (1.6x on a 2-core CPU for the
    # fast preset's net); with one input channel the images need no copy to match it.
    network.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    network.train()
    stopped_early = False
    batch = 0
    for batch in range(1, config.total_batches + 1):
        index = next(train_batches)
        x, y = augment(data.train_x[index]).contiguous(memory_format=torch.channels_last), data.train_y[index]
        with _autocast(device, config):
            logits = network(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        stats = [loss.detach(), (logits.argmax(1) == y).float().mean()]
        if batch % config.test_every == 0 or batch == config.total_batches:
            if holdout is None:
                index = next(test_batches)
                validation_x, validation_y = data.test_x[index], data.test_y[index]
            else:
                validation_x, validation_y = holdout
            with _autocast(device, config):
                validation = _evaluate(network, validation_x, validation_y)
            stats += validation
            network.train()
            # One host sync per check, only when there is a target to check.
            if config.target_accuracy is not None and validation[1].item() >= config.target_accuracy:
                stopped_early = batch < config.total_batches
        pending.push(batch, time.perf_counter() - started, torch.stack(stats))
        yield from _finite(pending.ready(), config)
        if stopped_early:
            break
    yield from _finite(pending.ready(wait=True), config)
    if outcome is not None:
        outcome.update(batches=batch, stopped_early=stopped_early)


def _finite(points: Iterator[MetricPoint], config: TrainingConfig) -> Iterator[MetricPoint]:
    """``points``, checked as each reaches the host (no device sync of its own): a loss that is no longer a
    finite number ends training, since nothing after it can recover, and a model saved from it would hold NaNs."""
    for point in points:
        for name, value in (("loss", point.loss), ("test loss", point.val_loss)):
            if value is not None and not math.isfinite(value):
                advice = "lower the learning_rate" + ("" if config.batch_norm else " or use batch_norm")
                raise TrainingError(f"training diverged: the {name} became {value} at batch {point.batch}; {advice}")
        yield point


def _autocast(device: torch.device, config: TrainingConfig) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")


@torch.inference_mode()
def _evaluate(
    network: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = EVALUATION_CHUNK
) -> list[torch.Tensor]:
    """Mean cross-entropy and accuracy of ``network`` on (x, y), as device tensors (no host sync)."""
    network.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(y), chunk):
        logits = network(x[start : start + chunk]).float()
        target = y[start : start + chunk]
        loss_sum += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    return [loss_sum / len(y), correct / len(y)]


def evaluate(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``network`` on (x, y)."""
    loss, accuracy = _evaluate(network, x, y)
    return loss.item(), accuracy.item()
