"""Inference: which model answers, the loaded networks (an LRU cache), and the forward pass. No HTTP here.

The model store is looked at on every request (a few file-system calls), so a model that a worker has just
saved, another API replica's choice of default, and a deletion all count at once, without a restart.
"""

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from service.store import ModelNotFound, default_model_id, load_network, model_exists


class NoModelYet(LookupError):
    """No model has been trained yet, so there is no default to serve."""


class ModelCache:
    """Networks loaded from the model store (safetensors), by id; beyond `size`, the least recently used go."""

    def __init__(self, model_dir: Path, size: int) -> None:
        self.model_dir = model_dir
        self.size = size
        self._networks: OrderedDict[str, nn.Module] = OrderedDict()
        self._lock = threading.Lock()  # requests run in a thread pool

    def resolve(self, model_id: str | None) -> str:
        """The id of the model to serve: `model_id` if the store has it, else the default."""
        if model_id is None:
            model_id = default_model_id(self.model_dir)
            if model_id is None:
                raise NoModelYet("no trained model yet: POST /jobs first")
        elif not model_exists(self.model_dir, model_id):
            raise ModelNotFound(f"no model {model_id!r}")
        return model_id

    def network(self, model_id: str) -> nn.Module:
        with self._lock:
            if model_id in self._networks:
                self._networks.move_to_end(model_id)
                return self._networks[model_id]
            # Loading holds the lock: a burst of requests for a new model loads it once (it takes milliseconds).
            network, _ = load_network(self.model_dir, model_id)
            self._networks[model_id] = network
            if len(self._networks) > self.size:
                self._networks.popitem(last=False)
            return network

    def discard(self, model_id: str) -> None:
        with self._lock:
            self._networks.pop(model_id, None)


@torch.inference_mode()
def classify(network: nn.Module, images: np.ndarray) -> np.ndarray:
    """Class probabilities, float32 (N, 10), of float32 images (N, 28, 28) in 0..1."""
    logits = network(torch.from_numpy(images).unsqueeze(1))
    return torch.softmax(logits, dim=1).numpy()
