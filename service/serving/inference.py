"""Inference: which model answers, the loaded networks (an LRU cache), and the forward pass. No HTTP here.

The model store is looked at on every request (a few file-system calls), so a model that a worker has just
saved, another API replica's choice of default, and a deletion all count at once, without a restart.
"""

import queue
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from service.domain.model_store import ModelNotFound, default_model_id, load_network, model_exists


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


class Batcher:
    """One forward pass for the images of many concurrent requests.

    The network is tiny, so a forward pass costs mostly its fixed overhead: 32 requests of one image each are
    far cheaper as one batch of 32. Requests queue here; a single thread takes everything queued at once
    (grouped by network), runs it through, and hands each request its rows. It never waits on a timer: under
    load the queue fills while the previous pass runs, and a lone request goes through at once.
    """

    def __init__(self, max_images: int = 256) -> None:
        self.max_images = max_images
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="inference-batcher", daemon=True).start()

    def classify(self, network: nn.Module, images: np.ndarray) -> np.ndarray:
        """Like `classify`, from any thread; blocks until this request's probabilities are ready."""
        pending = _Pending(network, images)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.probabilities

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            count = len(batch[0].images)
            while count < self.max_images:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                count += len(batch[-1].images)
            for network in {id(p.network): p.network for p in batch}.values():
                self._run(network, [p for p in batch if p.network is network])

    @staticmethod
    def _run(network: nn.Module, requests: list["_Pending"]) -> None:
        try:
            probabilities = classify(network, np.concatenate([r.images for r in requests]))
            ends = np.cumsum([len(r.images) for r in requests])[:-1]
            for request, rows in zip(requests, np.split(probabilities, ends), strict=True):
                request.probabilities = rows
        except Exception as error:  # each waiting request gets the error, the batcher lives on
            for request in requests:
                request.error = error
        for request in requests:
            request.done.set()


class _Pending:
    def __init__(self, network: nn.Module, images: np.ndarray) -> None:
        self.network, self.images = network, images
        self.probabilities: np.ndarray | None = None
        self.error: Exception | None = None
        self.done = threading.Event()
