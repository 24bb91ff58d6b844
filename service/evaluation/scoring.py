"""Score a network on an evaluation set, each picture prepared exactly as ``POST /predict`` prepares an upload:
decoded, then made MNIST-like by ``service.serving.images.to_mnist``."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from service.domain.model_metadata import ModelMetadata
from service.domain.model_store import load_network
from service.evaluation.sets import EvaluationSet
from service.serving.images import decode_image, mnist_to_input, to_mnist

DIGITS = 10
_BATCH = 512  # images per forward pass: bounded memory for any set size


@dataclass(frozen=True)
class Score:
    """How a network read one set: `confusion[true, read]` counts pictures of digit `true` read as `read`."""

    set_name: str
    confusion: np.ndarray  # int64 (10, 10)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.count))

    @property
    def per_digit(self) -> np.ndarray:
        """Accuracy on each true digit (NaN for a digit the set lacks)."""
        totals = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / totals


def prepare(evaluation_set: EvaluationSet) -> np.ndarray:
    """The network's inputs for a set's pictures: float32 (N, 28, 28) in 0..1, as /predict makes them."""
    return np.stack([mnist_to_input(to_mnist(decode_image(picture))) for picture in evaluation_set.pictures])


def score(network: nn.Module, evaluation_set: EvaluationSet, inputs: np.ndarray | None = None) -> Score:
    """How `network` reads the set; `inputs` (from `prepare`) saves preparing the pictures again for each model."""
    inputs = prepare(evaluation_set) if inputs is None else inputs
    read = _read(network, inputs)
    confusion = np.zeros((DIGITS, DIGITS), dtype=np.int64)
    np.add.at(confusion, (evaluation_set.labels, read), 1)
    return Score(evaluation_set.name, confusion)


@torch.inference_mode()
def _read(network: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The digit the network reads in each input, on whatever device it is (a network in training, too: it is
    put in eval mode for this and back after)."""
    device = next(network.parameters()).device
    training = network.training
    network.eval()
    try:
        batches = (
            torch.from_numpy(inputs[i : i + _BATCH]).unsqueeze(1).to(device) for i in range(0, len(inputs), _BATCH)
        )
        return torch.cat([network(batch).argmax(dim=1).cpu() for batch in batches]).numpy()
    finally:
        network.train(training)


@dataclass(frozen=True)
class ModelScores:
    """A stored model's scores on each set, with what its metadata says about it."""

    metadata: ModelMetadata
    scores: list[Score]


def score_models(model_dir: Path, model_ids: list[str], sets: list[EvaluationSet]) -> Iterator[ModelScores]:
    """Each model's scores on each set, one model at a time (each set's pictures are prepared once for all)."""
    inputs = {s.name: prepare(s) for s in sets}
    for model_id in model_ids:
        network, metadata = load_network(model_dir, model_id)
        yield ModelScores(metadata, [score(network, s, inputs[s.name]) for s in sets])
