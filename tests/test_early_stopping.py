"""Training to a target: a holdout taken from the end of the training set, never trained on, and a stop once the
accuracy on it reaches `target_accuracy`."""

import pytest
import torch
from pydantic import ValidationError

from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from tests.helpers import Recorder
from worker.training import Dataset, host_dataset, train


@pytest.fixture(scope="module")
def mnist(mnist_data_dir) -> Dataset:
    return host_dataset(mnist_data_dir)


def test_a_target_needs_a_holdout():
    with pytest.raises(ValidationError, match="give a holdout"):
        TrainingConfig(target_accuracy=0.9)
    assert TrainingConfig(target_accuracy=0.9, holdout=5000).target_accuracy == 0.9


def test_epochs_count_the_images_trained_on():
    assert TrainingConfig(epochs=1, batch_size=100).total_batches == 600
    assert TrainingConfig(epochs=1, batch_size=100, holdout=6000).total_batches == 540


def test_the_holdout_is_never_trained_on():
    count, holdout = 256, 56
    images = torch.zeros(count, 1, 28, 28)
    images[:, 0, 0, 0] = torch.arange(count, dtype=torch.float32)
    labels = torch.arange(count) % 10
    data = Dataset(images, labels, images[:20], labels[:20])
    recorder = Recorder()
    config = TrainingConfig(batch_size=50, train_batches=12, test_batch_size=20, holdout=holdout, seed=5)
    list(train(recorder, config, data))
    assert set(recorder.seen) == set(range(count - holdout))


def test_training_stops_once_the_holdout_reaches_the_target(mnist):
    config = TrainingConfig(train_batches=400, test_every=10, holdout=2000, target_accuracy=0.8, seed=0)
    outcome: dict = {}
    points = list(train(build_network(config), config, mnist, outcome))
    assert outcome["stopped_early"] and outcome["batches"] < 400
    assert points[-1].batch == outcome["batches"] and outcome["batches"] % 10 == 0
    checks = [p.val_accuracy for p in points if p.val_accuracy is not None]
    assert checks[-1] >= 0.8 and all(accuracy < 0.8 for accuracy in checks[:-1])


def test_an_unreached_target_trains_every_batch(mnist):
    config = TrainingConfig(train_batches=20, test_every=10, holdout=1000, target_accuracy=1.0, seed=0)
    outcome: dict = {}
    points = list(train(build_network(config), config, mnist, outcome))
    assert len(points) == 20 and outcome == {"batches": 20, "stopped_early": False}
