"""The worker's device paths on every device this machine has: each test runs on the CPU, and on CUDA where there
is a GPU (bench/gpu.sh runs this file on one; elsewhere the CUDA cases are skipped, saying so). Nothing here fakes
CUDA: on the CPU the same code takes its CPU branch (points copied at once rather than asynchronously).

What the GPU adds, and so what these check there: the data resident on the device, each batch's numbers copied
to the host asynchronously (pinned memory and an event, `_PendingPoints`), bf16 autocast, the channels-last layout,
a model saved from GPU tensors and loaded by the API on the CPU, and a job sent with `device: "cuda"`."""

import itertools
import math

import numpy as np
import pytest
import torch

from service.domain.mnist import load_mnist
from service.domain.model_store import load_network
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from tests.helpers import DEVICES, needs_cuda, train_model, wait_for_job
from worker.training import _PendingPoints, device_dataset, evaluate, host_dataset, resolve_device, train


def points_of(config: TrainingConfig, data_dir, device: str, outcome: dict | None = None) -> list:
    data = device_dataset(data_dir, resolve_device(device))
    network = build_network(config).to(data.train_x.device)
    return list(train(network, config, data, outcome))


@pytest.mark.parametrize("device", DEVICES)
def test_each_batchs_numbers_reach_the_host_once_in_order_and_intact(device):
    """Points pushed while the device is busy (so that on a GPU the copies are still in flight when asked for) come
    out complete, in batch order, with the values computed for their batch, validation numbers included."""
    pending = _PendingPoints(torch.device(device))
    side = 4096 if device == "cuda" else 64  # on a CPU nothing is asynchronous: no need to keep it busy
    busy = torch.randn(side, side, device=device) / side**0.5
    seen = []
    for batch in range(1, 201):
        busy = torch.tanh(busy @ busy)  # queued work ahead of this batch's copy (bounded: 0 * busy stays 0)
        stats = torch.tensor([batch, batch / 1000], device=device) + 0 * busy[0, 0]
        if batch % 7 == 0:
            stats = torch.cat([stats, torch.tensor([batch + 0.5, 0.25], device=device)])
        pending.push(batch, batch / 100, stats)
        if batch % 3 == 0:  # the loop asks after every batch; asking less often must lose nothing either
            seen += pending.ready()
    seen += pending.ready(wait=True)
    assert [p.batch for p in seen] == list(range(1, 201))
    assert all(p.loss == p.batch and p.accuracy == pytest.approx(p.batch / 1000) for p in seen)
    assert [p.batch for p in seen if p.val_loss is not None] == list(range(7, 201, 7))
    assert all(p.val_loss == p.batch + 0.5 and p.val_accuracy == 0.25 for p in seen if p.val_loss is not None)
    assert list(pending.ready(wait=True)) == []


@pytest.mark.parametrize("device", DEVICES)
def test_the_loop_on_the_device_yields_one_point_per_batch_in_order_and_learns(mnist_data_dir, device):
    config = TrainingConfig(train_batches=60, test_every=5, optimizer="adam", learning_rate=0.003, seed=1)
    data = device_dataset(mnist_data_dir, resolve_device(device))
    network = build_network(config).to(data.train_x.device)
    points = list(train(network, config, data))
    assert [p.batch for p in points] == list(range(1, 61))
    assert [p.batch for p in points if p.val_accuracy is not None] == list(range(5, 61, 5))
    assert all(math.isfinite(p.loss) and 0 <= p.accuracy <= 1 for p in points)
    assert all(a.elapsed_s <= b.elapsed_s for a, b in itertools.pairwise(points))
    assert sum(p.loss for p in points[-10:]) < sum(p.loss for p in points[:10]) / 2
    weights = next(network.parameters())
    assert weights.device.type == device and data.train_x.device.type == device
    assert weights.is_contiguous(memory_format=torch.channels_last)  # the layout cuDNN and oneDNN prefer


@pytest.mark.parametrize("device", DEVICES)
def test_an_early_stop_on_the_device_keeps_every_point_up_to_the_stop(mnist_data_dir, device):
    """The stop is decided on the device while earlier points may still be on their way to the host."""
    config = TrainingConfig(
        train_batches=400,
        test_every=5,
        holdout=2000,
        target_accuracy=0.8,
        optimizer="adam",
        learning_rate=0.003,
        seed=2,
    )
    outcome: dict = {}
    points = points_of(config, mnist_data_dir, device, outcome)
    assert outcome["stopped_early"] and outcome["batches"] < 400
    assert [p.batch for p in points] == list(range(1, outcome["batches"] + 1))
    assert points[-1].val_accuracy >= 0.8
    assert all(p.val_accuracy < 0.8 for p in points[:-1] if p.val_accuracy is not None)


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_metrics_on_the_device(mnist_data_dir, device):
    """What the `seed` field promises: the same seed on the same device gives the same metrics."""
    config = TrainingConfig(train_batches=10, seed=3)
    first, second = (points_of(config, mnist_data_dir, device) for _ in range(2))
    assert [(p.loss, p.accuracy, p.val_loss) for p in first] == [(p.loss, p.accuracy, p.val_loss) for p in second]


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_runs_the_convolutions_in_bfloat16_and_trains(mnist_data_dir, device):
    config = TrainingConfig(train_batches=30, precision="bf16", optimizer="adam", learning_rate=0.003, seed=4)
    data = device_dataset(mnist_data_dir, resolve_device(device))
    network = build_network(config).to(data.train_x.device)
    dtypes = set()
    convolutions = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convolutions:
        conv.register_forward_hook(lambda _module, _inputs, output: dtypes.add(output.dtype))
    points = list(train(network, config, data))
    assert convolutions and dtypes == {torch.bfloat16}
    assert all(math.isfinite(p.loss) for p in points)
    assert sum(p.loss for p in points[-5:]) < sum(p.loss for p in points[:5])
    assert next(network.parameters()).dtype == torch.float32  # autocast: the weights stay float32


@pytest.mark.parametrize("device", DEVICES)
def test_a_model_trained_on_the_device_loads_and_scores_the_same_on_the_cpu(mnist_data_dir, tmp_path, device):
    """Saved from the device's tensors (in channels-last), read back by the API's loader on the CPU."""
    config = TrainingConfig(train_batches=60, batch_norm=True, device=device, seed=5)
    metadata = train_model(tmp_path, mnist_data_dir, config)
    network, loaded = load_network(tmp_path, metadata.id)
    assert loaded.device == device and all(t.device.type == "cpu" for t in network.state_dict().values())
    cpu = host_dataset(mnist_data_dir)
    _loss, accuracy = evaluate(network, cpu.test_x, cpu.test_y)
    # On the GPU, convolutions may use TF32: the CPU's float32 answers differ by a few of the 10,000 digits.
    assert accuracy == pytest.approx(metadata.test_accuracy, abs=0.002)
    assert accuracy > 0.85


@pytest.mark.parametrize("device", DEVICES)
def test_a_job_for_the_device_trains_streams_every_point_and_its_model_serves_on_the_cpu_api(service, device):
    with service.client() as client:
        body = {"device": device, "train_batches": 30, "test_every": 5, "seed": 6}
        job = wait_for_job(client, client.post("/jobs", json=body).json()["id"], timeout=120)
        assert job["status"] == "succeeded", job
        points = client.get(f"/jobs/{job['id']}/metrics", params={"limit": 100}).json()["points"]
        model = client.get(f"/models/{job['model_id']}").json()
        mnist = load_mnist(service.settings.data_dir)
        instances = [{"pixels": image.reshape(-1).tolist()} for image in mnist.test_images[:200]]
        answer = client.post("/predict", params={"model_id": job["model_id"]}, json={"instances": instances})
    assert [p["batch"] for p in points] == list(range(1, 31))
    assert [p["batch"] for p in points if "val_accuracy" in p] == list(range(5, 31, 5))
    assert model["device"] == device
    assert answer.status_code == 200, answer.text
    digits = np.array([p["digit"] for p in answer.json()["predictions"]])
    assert (digits == mnist.test_labels[:200]).mean() > 0.7


@needs_cuda
def test_cuda_is_used_when_asked_for_and_when_auto():
    assert resolve_device("cuda").type == resolve_device("auto").type == "cuda"
    assert resolve_device("cpu").type == "cpu"
