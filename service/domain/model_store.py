"""The model store: ``<model_dir>/<model_id>/weights.safetensors`` + ``metadata.json``.

Weights are written and read with safetensors only (never pickle). A model folder appears atomically
(written under a temporary name, then renamed), so readers never see half a model.

The default model is the one named in ``<model_dir>/default-model`` (written with ``choose_default_model``),
else the newest. It lives beside the models rather than in Redis: every API replica shares the directory,
and prediction keeps working while Redis is down.
"""

import logging
import platform
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import service
from service.domain.files import atomic_path
from service.domain.model_metadata import ModelMetadata
from service.domain.network import build_network
from service.domain.training_config import STORED

MODEL_ID_PATTERN = r"^\d{8}T\d{6}Z-[0-9a-f]{8}$"
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
DEFAULT_FILE = "default-model"

log = logging.getLogger(__name__)


class ModelNotFound(LookupError):
    pass


class ModelUnreadable(ModelNotFound):
    """A model whose folder is there but whose files cannot be read (invalid metadata.json, missing or corrupt
    weights). It serves no one, and it never stands in the way of the others: listings and the default skip it."""

    def __init__(self, model_id: str, file: str, reason: object) -> None:
        detail = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        if isinstance(reason, ValidationError):  # one line per problem, without pydantic's links
            detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in reason.errors()[:3])
        super().__init__(f"model {model_id!r} cannot be read: {file}: {detail[:300]}")
        self.model_id = model_id


def software_versions() -> dict[str, str]:
    """The versions a model's metadata records: of the service, torch and Python that trained it."""
    return {"mnist-service": service.__version__, "torch": torch.__version__, "python": platform.python_version()}


def new_model_id(created_at: datetime) -> str:
    """Ids sort by creation time, which is what listings want, and carry no user input."""
    return f"{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def save_model(model_dir: Path, network: nn.Module, metadata: ModelMetadata) -> Path:
    final = model_dir / metadata.id
    with atomic_path(final, directory=True) as staging:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
        save_file(state, staging / WEIGHTS_FILE)
        (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
    return final


def model_exists(model_dir: Path, model_id: str) -> bool:
    # The pattern first: an id that could name anything outside the store never reaches the file system.
    return bool(re.fullmatch(MODEL_ID_PATTERN, model_id)) and (model_dir / model_id / METADATA_FILE).is_file()


def _folder(model_dir: Path, model_id: str) -> Path:
    if not model_exists(model_dir, model_id):
        raise ModelNotFound(f"no model {model_id!r}")
    return model_dir / model_id


@contextmanager
def _still_there(model_id: str) -> Iterator[None]:
    """A model deleted after its folder was found is not found: its files vanish with the folder (a rename)."""
    try:
        yield
    except FileNotFoundError:
        raise ModelNotFound(f"no model {model_id!r}") from None


def load_metadata(model_dir: Path, model_id: str) -> ModelMetadata:
    """The model's metadata; ModelUnreadable if its metadata.json is not valid (ModelNotFound is a LookupError,
    so a vanished model passes through as itself)."""
    try:
        with _still_there(model_id):
            return ModelMetadata.model_validate_json(
                (_folder(model_dir, model_id) / METADATA_FILE).read_text(), context={STORED: True}
            )
    except (ValueError, OSError) as error:  # invalid JSON or fields (ValidationError), bad bytes, unreadable file
        raise ModelUnreadable(model_id, METADATA_FILE, error) from None


def weights_file(model_dir: Path, model_id: str) -> Path:
    """The model's safetensors file; other formats are cached beside it (``service.serving.export``)."""
    return _folder(model_dir, model_id) / WEIGHTS_FILE


def open_file(model_dir: Path, model_id: str, name: str = WEIGHTS_FILE) -> BinaryIO:
    """One of the model's files, open for reading. Once it is open, it reads whole even if the model is deleted
    meanwhile; a model deleted before is ModelNotFound, like one that never was."""
    with _still_there(model_id):
        return (_folder(model_dir, model_id) / name).open("rb")


def load_network(model_dir: Path, model_id: str) -> tuple[nn.Module, ModelMetadata]:
    metadata = load_metadata(model_dir, model_id)
    network = build_network(metadata.config)
    try:
        with _still_there(model_id):
            network.load_state_dict(load_file(_folder(model_dir, model_id) / WEIGHTS_FILE))
    except ModelNotFound:
        if model_exists(model_dir, model_id):  # its metadata is still there: the weights are what is missing
            raise ModelUnreadable(model_id, WEIGHTS_FILE, "the file is missing") from None
        raise
    except (SafetensorError, RuntimeError, ValueError, OSError) as error:  # corrupt, or not this network's
        raise ModelUnreadable(model_id, WEIGHTS_FILE, error) from None
    return network.eval(), metadata


def model_ids(model_dir: Path) -> list[str]:
    """Every model's id, newest first (ids sort by creation time; staging folders are hidden names)."""
    if not model_dir.is_dir():
        return []
    return sorted((p.name for p in model_dir.iterdir() if re.fullmatch(MODEL_ID_PATTERN, p.name)), reverse=True)


def list_models(model_dir: Path) -> list[ModelMetadata]:
    """Every model, newest first; one that cannot be read is left out, with a WARNING that names it."""
    models = []
    for model_id in model_ids(model_dir):
        try:
            models.append(load_metadata(model_dir, model_id))
        except ModelUnreadable as error:
            log.warning("model store: %s; it is left out of the listing", error)
        except ModelNotFound:  # deleted since the directory was listed, or a folder without its metadata
            if (model_dir / model_id).is_dir():
                log.warning(
                    "model store: model %r cannot be read: it has no %s; it is left out", model_id, METADATA_FILE
                )
    return models


def delete_model(model_dir: Path, model_id: str) -> None:
    """Remove a model. It leaves the store at once (a rename), so no reader loads half of it."""
    folder = _folder(model_dir, model_id)
    doomed = model_dir / f".{model_id}.deleted-{secrets.token_hex(4)}"
    try:
        folder.rename(doomed)
    except FileNotFoundError:  # another request deleted it first
        raise ModelNotFound(f"no model {model_id!r}") from None
    shutil.rmtree(doomed, ignore_errors=True)


def choose_default_model(model_dir: Path, model_id: str) -> None:
    """Make `model_id` the default of every API process that shares `model_dir` (not one that cannot be read)."""
    load_metadata(model_dir, model_id)
    with atomic_path(model_dir / DEFAULT_FILE) as staging:  # readers see the old choice or the new one
        staging.write_text(f"{model_id}\n")


def chosen_default_model(model_dir: Path) -> str | None:
    """The model chosen as the default, while it exists and can be read: else the newest readable takes over."""
    try:
        model_id = (model_dir / DEFAULT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return model_id if model_exists(model_dir, model_id) and _readable(model_dir, model_id) else None


def default_candidates(model_dir: Path) -> Iterator[str]:
    """The models that may serve when none is named, in turn: the chosen one, then the others newest first, each
    whose metadata can be read (lazily: the first usable one costs one metadata read)."""
    chosen = chosen_default_model(model_dir)
    if chosen:
        yield chosen
    for model_id in model_ids(model_dir):
        if model_id != chosen and _readable(model_dir, model_id):
            yield model_id


def default_model_id(model_dir: Path) -> str | None:
    """The model that serves when none is named: the chosen one, else the newest; models that cannot be read are
    passed over; None before any (readable one) exists."""
    return next(default_candidates(model_dir), None)


_reported: set[str] = set()  # unreadable models already logged by the default's resolution (once per process)


def _readable(model_dir: Path, model_id: str) -> bool:
    try:
        load_metadata(model_dir, model_id)
    except ModelUnreadable as error:
        if model_id not in _reported:
            _reported.add(model_id)
            log.warning("model store: %s; it cannot be the default", error)
        return False
    except ModelNotFound:
        return False
    return True
