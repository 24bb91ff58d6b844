"""Train and score the presets, and measure what augmentation costs: the numbers behind the `handwriting` and
`best` presets' comments and docs/handwriting.md.

``python -m bench.presets [--threads 2] train best [--seed 0] [--set augmentation.rotation=10 ...] [--model-dir DIR]``
trains a preset with the project's own loop (worker.training.train) on the CPU with 2 torch threads (a worker's
share of this 2-core machine, as MNIST_TORCH_THREADS), saves the model with service.domain.model_store, and prints
a JSON line: the training seconds and the load average beside them (the machine is shared, so times are
inflated) and the accuracy on the MNIST test set; then a line per evaluation set (service.evaluation, through
/predict's picture preparation; `mnist-service evaluate` says more). ``--set`` overrides a field (dotted for
augmentation's), for tuning.

``python -m bench.presets cost`` times the augmentation of a batch against a training step of the same batch,
interleaved in the same run, and prints their ratio.
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.training import train_model
from service.domain.model_store import load_network
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from service.evaluation import scoring, sets
from service.settings import get_settings
from worker.augmentation import BatchAugmenter
from worker.training import host_dataset, make_optimizer

THREADS = 2  # a worker's share of this 2-core machine; --threads to compare


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def config_for(preset: str, overrides: list[str], seed: int) -> TrainingConfig:
    """The preset with ``overrides`` ("field=JSON value", "augmentation.rotation=10") applied over it."""
    fields: dict = {"preset": preset, "seed": seed}
    for override in overrides:
        name, value = override.split("=", 1)
        *parents, last = name.split(".")
        node = fields
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = json.loads(value)
    return TrainingConfig(**fields)


def train_preset(config: TrainingConfig, model_dir: Path) -> tuple[nn.Module, dict]:
    load_before = load_average()
    metadata = train_model(model_dir, get_settings().data_dir, config)
    network, _ = load_network(model_dir, metadata.id)
    return network, {
        "model_id": metadata.id,
        "train_s": round(metadata.train_seconds, 1),
        "load_average": [load_before, load_average()],
        "mnist_test": round(metadata.test_accuracy, 4),
    }


def augmentation_cost(preset: str, batches: int) -> dict:
    """Seconds per batch of augmenting it and of a training step on it (forward, backward, step), interleaved so
    that both see the same load; and their ratio."""
    config = TrainingConfig(preset=preset, seed=0)
    data = host_dataset(get_settings().data_dir)
    network = build_network(config).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(network, config)
    augment = BatchAugmenter(config.augmentation, config.seed, torch.device("cpu"))
    augment_s = step_s = 0.0
    for batch in range(batches):
        images = data.train_x[batch * config.batch_size : (batch + 1) * config.batch_size]
        labels = data.train_y[batch * config.batch_size : (batch + 1) * config.batch_size]
        started = time.perf_counter()
        images = augment(images)
        augmented = time.perf_counter()
        loss = F.cross_entropy(network(images.contiguous(memory_format=torch.channels_last)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        augment_s += augmented - started
        step_s += time.perf_counter() - augmented
    return {
        "preset": preset,
        "batch_size": config.batch_size,
        "augment_ms": round(1000 * augment_s / batches, 2),
        "step_ms": round(1000 * step_s / batches, 2),
        "ratio": round(augment_s / step_s, 3),
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.presets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="train a preset, save it, score it")
    trainer.add_argument("preset")
    trainer.add_argument("--seed", type=int, default=0)
    trainer.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override a field")
    trainer.add_argument("--model-dir", type=Path, default=Path("var/preset-models"))
    trainer.add_argument("--sets", nargs="*", default=None, help="evaluation sets (default: all present)")
    cost = commands.add_parser("cost", help="augmentation's time per batch against a training step's")
    cost.add_argument("--preset", default="handwriting")
    cost.add_argument("--batches", type=int, default=100)
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "cost":
        print(json.dumps(augmentation_cost(args.preset, args.batches)))
        return
    config = config_for(args.preset, args.set, args.seed)
    network, result = train_preset(config, args.model_dir)
    print(json.dumps({"preset": args.preset, "seed": args.seed, "overrides": args.set, **result}), flush=True)
    for name in sets.available() if args.sets is None else args.sets:  # `mnist-service evaluate` says more
        print(json.dumps({"model_id": result["model_id"], name: scoring.score(network, sets.load(name)).accuracy}))


if __name__ == "__main__":
    main()
