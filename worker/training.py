"""The training loop itself, free of Redis: it yields one metric point per batch.

Kept bare so that it is tested and benchmarked on its own; the service's overhead is measured against it.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.data import load_mnist
from service.network import build_network
from service.schemas import MetricPoint, TrainingConfig


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
        return torch.from_numpy((raw.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28))

    def labels(raw: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(raw.astype(np.int64))

    return Dataset(images(mnist.train_images), labels(mnist.train_labels),
                   images(mnist.test_images), labels(mnist.test_labels))


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
    evaluate(network, data.test_x, data.test_y)


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


def train(network: nn.Module, config: TrainingConfig, data: Dataset) -> Iterator[MetricPoint]:
    """Train ``network`` in place, one batch at a time, yielding each batch's point as soon as it is known.

    Like the tutorial: shuffled batches (a fresh permutation every epoch), and every ``test_every`` batches
    (and after the last) the loss and accuracy on the next ``test_batch_size`` test images.
    """
    config = config.resolved()
    torch.manual_seed(config.seed)
    order = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(network, config)
    total, size = config.total_batches, config.batch_size
    train_count, test_count = len(data.train_y), len(data.test_y)
    permutation, position = torch.randperm(train_count, generator=order), train_count
    test_order, test_position = torch.randperm(test_count, generator=order), 0
    started = time.perf_counter()
    network.train()
    for batch in range(1, total + 1):
        if position + size > train_count:  # a new epoch: reshuffle
            permutation, position = torch.randperm(train_count, generator=order), 0
        index = permutation[position:position + size].to(data.train_x.device)
        position += size
        x, y = data.train_x[index], data.train_y[index]
        logits = network(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        point = MetricPoint(
            batch=batch,
            loss=loss.item(),
            accuracy=(logits.argmax(1) == y).float().mean().item(),
            elapsed_s=0.0,
        )
        if batch % config.test_every == 0 or batch == total:
            take = min(config.test_batch_size, test_count)
            if test_position + take > test_count:
                test_position = 0
            index = test_order[test_position:test_position + take].to(data.test_x.device)
            test_position += take
            point.val_loss, point.val_accuracy = evaluate(network, data.test_x[index], data.test_y[index])
            network.train()
        point.elapsed_s = time.perf_counter() - started
        yield point


@torch.no_grad()
def evaluate(network: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 2000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``network`` on (x, y)."""
    network.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(y), chunk):
        logits = network(x[start:start + chunk])
        target = y[start:start + chunk]
        loss_sum += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    return loss_sum.item() / len(y), correct.item() / len(y)
