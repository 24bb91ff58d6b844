"""The CNN: the tutorial's architecture exactly, and the configurable variants."""

import math

import torch

from service.domain.network import build_network, parameter_count
from service.domain.training_config import TrainingConfig


def test_tutorial_network_has_5994_parameters_layer_by_layer():
    network = build_network(TrainingConfig())
    weighted = [m for m in network if hasattr(m, "weight")]
    assert [sum(p.numel() for p in m.parameters()) for m in weighted] == [208, 3216, 2570]
    assert parameter_count(network) == 5994
    assert [type(m).__name__ for m in network] == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
    ]


def test_output_is_ten_logits_per_image():
    network = build_network(TrainingConfig())
    assert network(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_variance_scaling_initialisation():
    torch.manual_seed(0)
    network = build_network(TrainingConfig(conv_filters=[64, 64], hidden_units=256))
    for module in (m for m in network if hasattr(m, "weight")):
        fan_in = module.weight[0].numel()
        std = module.weight.std().item()
        assert abs(std - math.sqrt(1 / fan_in)) / math.sqrt(1 / fan_in) < 0.15  # TF.js VarianceScaling, fan-in
        assert module.weight.abs().max().item() <= 2 * math.sqrt(1 / fan_in) / 0.8796 + 1e-6  # truncated at 2 std
        assert torch.all(module.bias == 0)


def test_configurable_variants_build_and_run():
    for config in [
        TrainingConfig(conv_filters=[16, 32, 64], padding="same", kernel_size=3, batch_norm=True),
        TrainingConfig(conv_filters=[4], kernel_size=7, hidden_units=32, dropout=0.5),
        TrainingConfig(conv_filters=[8, 8, 8, 8], padding="same", kernel_size=4),
    ]:
        assert build_network(config)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
