"""The baseline for the `fast` preset: a hand-written training loop in plain PyTorch, of the kind the old `fast`
preset was (3 conv layers of 16/32/64 3x3 filters with batch norm, Adam with a one-cycle schedule, fp32, batches
of 128, one epoch). It uses nothing of the project's training module: only the MNIST arrays are shared, so that
`fast`'s time is compared with what anyone would write in an afternoon, in the same run."""

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.domain.mnist import load_mnist


def _tensors(data_dir: Path) -> tuple[torch.Tensor, ...]:
    mnist = load_mnist(data_dir)

    def images(raw: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(raw.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)

    return (
        images(mnist.train_images),
        torch.from_numpy(mnist.train_labels.astype(np.int64)),
        images(mnist.test_images),
        torch.from_numpy(mnist.test_labels.astype(np.int64)),
    )


def network() -> nn.Sequential:
    def block(inputs: int, outputs: int) -> list[nn.Module]:
        return [
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64), nn.Flatten(), nn.Linear(64 * 3 * 3, 10))


def run(data_dir: Path, seed: int = 0, epochs: int = 1, batch_size: int = 128, lr: float = 0.01) -> dict:
    """Train one epoch, then test on the full 10,000 test images: training seconds and test accuracy."""
    train_x, train_y, test_x, test_y = _tensors(data_dir)
    torch.manual_seed(seed)
    model = network()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(train_y) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_y))
        for start in range(0, len(train_y) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(train_x[index]), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    train_s = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(test_x[i : i + 1000]).argmax(1) == test_y[i : i + 1000]).sum().item()
            for i in range(0, len(test_y), 1000)
        )
    return {"train_s": train_s, "test_accuracy": correct / len(test_y)}
