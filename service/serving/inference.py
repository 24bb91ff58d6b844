"""Inference: which model answers, the loaded networks (an LRU cache), and the forward pass. No HTTP here.

The model store is looked at on every request (a few file-system calls), so a model that a worker has just
saved, another API replica's choice of default, and a deletion all count at once, without a restart.
"""

import asyncio
import os
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from service.domain.model_store import (
    CHOOSE_A_DEFAULT,
    DEFAULT_FILE,
    METADATA_FILE,
    ModelNotFound,
    ModelUnreadable,
    default_model_id,
    load_network,
    model_exists,
    no_default_reason,
)


class NoDefaultModel(LookupError):
    """No model is named and there is no default to serve: none trained yet, or none chosen since the default was
    deleted (or became unreadable). The message says which, and what to do."""


class ModelCache:
    """Networks loaded from the model store (safetensors), by id; beyond `size`, the least recently used go."""

    def __init__(self, model_dir: Path, size: int) -> None:
        self.model_dir = model_dir
        self.size = size
        self._networks: OrderedDict[str, nn.Module] = OrderedDict()
        self._lock = threading.Lock()  # requests run in a thread pool
        # What `resolve(None)` gave last: (the store's signature then, the model's id, until when it may be reused)
        self._default: tuple[tuple, str, float] | None = None

    def resolve(self, model_id: str | None) -> str:
        """The id of the model to serve: `model_id` if the store has it, else the default."""
        if model_id is None:
            # Only the default, never a stand-in: another model would be a silent switch to one nobody chose.
            model_id = default_model_id(self.model_dir)
            if model_id is None:
                raise NoDefaultModel(no_default_reason(self.model_dir))
            try:
                self.network(model_id)  # its weights too must load (then cached)
            except ModelUnreadable as error:
                raise NoDefaultModel(f"no default model: the default {error}; {CHOOSE_A_DEFAULT}") from None
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

    # For the event loop: the answer of `resolve` and `network` without reading the store or loading, when that is
    # safe, so that a request needs no thread for them.

    def loaded(self, model_id: str | None) -> tuple[str, nn.Module] | None:
        """The model that `resolve(model_id)` names and its network, without waiting and in microseconds, when
        they are known: a named model still in the store (one stat) whose network is loaded; the default while the
        store looks as it did when it was resolved (the folder's entries and the default's choice and metadata
        files, by their stats; for at most `_DEFAULT_REUSE_S` in any case). Else None: `resolve_and_load` then, in
        a thread."""
        if model_id is None:
            remembered = self._default
            if remembered is None or time.monotonic() > remembered[2]:
                return None
            signature, model_id, _ = remembered
            if signature != self._signature(model_id):
                return None
        elif not model_exists(self.model_dir, model_id):
            return None
        if not self._lock.acquire(blocking=False):  # a model is being loaded: not worth waiting for here
            return None
        try:
            network = self._networks.get(model_id)
            if network is None:
                return None
            self._networks.move_to_end(model_id)
            return model_id, network
        finally:
            self._lock.release()

    def resolve_and_load(self, model_id: str | None) -> tuple[str, nn.Module]:
        """`resolve(model_id)` and its network (loaded if need be); the default is remembered for `loaded`."""
        if model_id is not None:
            model_id = self.resolve(model_id)
            return model_id, self.network(model_id)
        started = time.monotonic()
        before = self._folder_signature()
        model_id = self.resolve(None)
        network = self.network(model_id)
        signature = self._signature(model_id)
        if signature[0] == before:  # the store did not change while it was read
            self._default = (signature, model_id, started + _DEFAULT_REUSE_S)
        return model_id, network

    def _folder_signature(self) -> tuple:
        folder_path = os.fspath(self.model_dir)  # plain strings: pathlib's joins cost more than the stat calls
        try:
            folder = os.stat(folder_path)
        except OSError:
            return ()
        try:
            chosen = os.stat(f"{folder_path}/{DEFAULT_FILE}").st_ino  # replaced by a rename at each choice
        except OSError:
            chosen = None
        return folder.st_mtime_ns, folder.st_nlink, folder.st_ino, chosen

    def _signature(self, model_id: str) -> tuple:
        try:
            metadata = os.stat(f"{os.fspath(self.model_dir)}/{model_id}/{METADATA_FILE}")
        except OSError:
            return (self._folder_signature(), None)
        return self._folder_signature(), (metadata.st_ino, metadata.st_mtime_ns, metadata.st_size)


# How long the default's resolution may be reused while the store looks the same: a bound on what its signature
# could miss (a change within the file system's timestamp resolution that adds or removes no entry).
_DEFAULT_REUSE_S = 1.0


@torch.inference_mode()
def classify(network: nn.Module, images: np.ndarray) -> np.ndarray:
    """Class probabilities, float32 (N, 10), of float32 images (N, 28, 28) in 0..1."""
    logits = network(torch.from_numpy(images).unsqueeze(1))
    return torch.softmax(logits, dim=1).numpy()


class Batcher:
    """One forward pass for the images of many concurrent requests.

    The network is tiny, so a forward pass costs mostly its fixed overhead: 32 requests of one image each are
    far cheaper as one batch of 32. It never waits on a timer: under load requests gather while the previous
    pass runs, and a lone request goes through at once. Two ways in:

    - `classify_async`, for the event loop (POST /predict): the requests of up to `loop_images` images that reach
      it in the same turn of the loop are run as one batch, on the loop itself, once the requests ready in that
      turn have been served. No thread: a hand-off to another thread and back costs more than the pass of a
      small batch, and a thread that needs the GIL while the loop is busy waits up to 5 ms (Python's switch
      interval) each time it needs it (the network returns to Python after each layer), which turned a 1.7 ms
      pass of 32 images into 35 ms under load. Larger requests go to the thread.
    - `classify`, from any other thread; it blocks. Requests queue for one thread, which takes everything queued
      at once (grouped by network), runs it through, and hands each request its rows.

    Passes run with `threads` of torch's threads: its count is per thread, set in each thread that runs passes.
    On a small machine one is best: the event loop needs a core to parse requests, and torch's threads, spinning
    in wait for each other on a busy machine, make a small forward pass ten times slower rather than faster.

    (A network compiled by TorchScript's `optimize_for_inference` runs a batch of 32 2-3x faster, but each
    compilation leaves about 0.7 MB in TorchScript's global registry of types for good: a process that serves
    each newly trained model would grow without bound. The networks run eagerly.)
    """

    def __init__(self, max_images: int = 256, threads: int = 1, loop_images: int = 64) -> None:
        self.max_images = max_images
        self.threads = threads
        self.loop_images = loop_images
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._on_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        threading.Thread(target=self._serve, name="inference-batcher", daemon=True).start()

    def classify(self, network: nn.Module, images: np.ndarray) -> np.ndarray:
        """Like `classify`, from any thread; blocks until this request's probabilities are ready."""
        pending = _Pending(network, images, threading.Event())
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.probabilities

    async def classify_async(self, network: nn.Module, images: np.ndarray) -> np.ndarray:
        """Like `classify`, awaited on the running event loop."""
        loop = asyncio.get_running_loop()
        pending = _Pending(network, images, loop.create_future())
        if len(images) <= self.loop_images:
            waiting = self._on_loop.setdefault(loop, [])
            waiting.append(pending)
            if len(waiting) == 1:  # after the requests that are ready now have had their turn
                loop.call_soon(self._run_on_loop, loop)
        else:
            self._queue.put(pending)
        return await pending.done

    def _run_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        self._run_batch(self._on_loop.pop(loop, []))

    def _serve(self) -> None:
        torch.set_num_threads(self.threads)
        while True:
            batch = [self._queue.get()]
            count = len(batch[0].images)
            while count < self.max_images:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                count += len(batch[-1].images)
            self._run_batch(batch)

    def _run_batch(self, batch: list["_Pending"]) -> None:
        for network in {id(p.network): p.network for p in batch}.values():
            requests = [p for p in batch if p.network is network]
            # At most `max_images` a pass (and a request whole), so that a pass never holds the loop for long.
            start, count = 0, 0
            for end, request in enumerate(requests, 1):
                count += len(request.images)
                if count >= self.max_images or end == len(requests):
                    self._run(network, requests[start:end])
                    start, count = end, 0

    @staticmethod
    def _run(network: nn.Module, requests: list["_Pending"]) -> None:
        try:
            images = requests[0].images if len(requests) == 1 else np.concatenate([r.images for r in requests])
            probabilities = classify(network, images)
            if len(requests) == 1:
                requests[0].probabilities = probabilities
            else:
                ends = np.cumsum([len(r.images) for r in requests])[:-1]
                for request, rows in zip(requests, np.split(probabilities, ends), strict=True):
                    request.probabilities = rows
        except Exception as error:  # each waiting request gets the error, the batcher lives on
            for request in requests:
                request.error = error
        waiting: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for request in requests:
            if isinstance(request.done, threading.Event):
                request.done.set()
            else:
                waiting.setdefault(request.done.get_loop(), []).append(request)
        for loop, answered in waiting.items():
            if loop is _running_loop():  # on the loop itself: answered now
                _answer(answered)
                continue
            try:  # from the thread: one wake-up of each loop for the whole batch
                loop.call_soon_threadsafe(_answer, answered)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _answer(requests: list["_Pending"]) -> None:
    """On the requests' event loop: each awaiting request gets its rows or the error (unless it was cancelled,
    its client gone)."""
    for request in requests:
        if request.done.done():
            continue
        if request.error is not None:
            request.done.set_exception(request.error)
        else:
            request.done.set_result(request.probabilities)


class _Pending:
    def __init__(self, network: nn.Module, images: np.ndarray, done: "threading.Event | asyncio.Future") -> None:
        self.network, self.images = network, images
        self.probabilities: np.ndarray | None = None
        self.error: Exception | None = None
        self.done = done
