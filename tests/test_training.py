"""The bare training loop, free of Redis: points, validation cadence, shuffling, determinism."""

import itertools
import math

import pytest
import torch

from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from tests.helpers import Recorder, without_cuda
from worker.training import Dataset, TrainingError, evaluate, host_dataset, resolve_device, train


@pytest.fixture(scope="module")
def mnist(mnist_data_dir) -> Dataset:
    return host_dataset(mnist_data_dir)


def test_a_point_per_batch_with_validation_every_test_every_and_at_the_end(mnist):
    config = TrainingConfig(train_batches=23, test_every=5, seed=1)
    points = list(train(build_network(config), config, mnist))
    assert [p.batch for p in points] == list(range(1, 24))
    assert [p.batch for p in points if p.val_accuracy is not None] == [5, 10, 15, 20, 23]
    assert all(math.isfinite(p.loss) and 0 <= p.accuracy <= 1 for p in points)
    assert all(a.elapsed_s <= b.elapsed_s for a, b in itertools.pairwise(points))


def test_same_seed_same_metrics_other_seed_other_metrics(mnist):
    def run(seed):
        config = TrainingConfig(train_batches=10, seed=seed)
        return [(p.loss, p.accuracy, p.val_loss) for p in train(build_network(config), config, mnist)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_the_tutorial_run_learns(mnist):
    config = TrainingConfig(seed=0)
    network = build_network(config)
    points = list(train(network, config, mnist))
    assert sum(p.loss for p in points[-10:]) < sum(p.loss for p in points[:10]) / 3
    loss, accuracy = evaluate(network, mnist.test_x, mnist.test_y)
    assert accuracy > 0.85 and loss < 0.5


def test_every_epoch_sees_every_image_once_in_a_fresh_order():
    count = 256
    images = torch.zeros(count, 1, 28, 28)
    images[:, 0, 0, 0] = torch.arange(count, dtype=torch.float32)
    labels = torch.arange(count) % 10
    data = Dataset(images, labels, images[:20], labels[:20])
    recorder = Recorder()
    config = TrainingConfig(batch_size=64, train_batches=12, test_batch_size=20, seed=5)  # 3 epochs of 4 batches
    list(train(recorder, config, data))
    epochs = [recorder.seen[i * count : (i + 1) * count] for i in range(3)]
    assert all(sorted(epoch) == list(range(count)) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


@without_cuda
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(TrainingError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
