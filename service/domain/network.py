"""The CNN, built from a TrainingConfig; shared by training and inference.

The default is the tutorial's network exactly: conv 5x5x8 → max-pool → conv 5x5x16 → max-pool → dense 10,
5,994 parameters, with TensorFlow.js's VarianceScaling (fan-in, truncated normal) initialisation.
The softmax is left to the loss (cross-entropy on logits) and to inference.
"""

import math

import torch
from torch import nn

from service.domain.training_config import TrainingConfig

# Keras/TensorFlow.js divide the std by this so that the truncated normal keeps the target variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def build_network(config: TrainingConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for filters in config.conv_filters:
        conv = nn.Conv2d(channels, filters, config.kernel_size, padding=config.conv_padding, bias=not config.batch_norm)
        layers.append(conv)
        if config.batch_norm:
            layers.append(nn.BatchNorm2d(filters))
        layers += [nn.ReLU(), nn.MaxPool2d(2, 2)]
        channels = filters
    layers.append(nn.Flatten())
    if config.dropout:
        layers.append(nn.Dropout(config.dropout))
    features = channels * config.feature_side**2
    if config.hidden_units:
        layers += [nn.Linear(features, config.hidden_units), nn.ReLU()]
        features = config.hidden_units
    layers.append(nn.Linear(features, 10))
    network = nn.Sequential(*layers)
    # The config's seed fixes the initial weights too: same seed, same run.
    generator = torch.Generator().manual_seed(config.seed) if config.seed is not None else None
    for module in network:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            _variance_scaling(module, generator)
    return network


def _variance_scaling(module: nn.Conv2d | nn.Linear, generator: torch.Generator | None) -> None:
    fan_in = module.weight[0].numel()
    std = math.sqrt(1.0 / fan_in) / _TRUNCATED_NORMAL_STD
    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std, generator=generator)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def parameter_count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())
