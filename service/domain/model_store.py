"""The model store: ``<model_dir>/<model_id>/weights.safetensors`` + ``metadata.json``.

Weights are written and read with safetensors only (never pickle). A model folder appears atomically
(written under a temporary name, then renamed), so readers never see half a model.

The default model is the one named in ``<model_dir>/default-model``: the first model saved into a store without a
default, else the one someone chose (``choose_default_model``, or a job's ``make_default``). Nothing else changes it,
so a quick trial job never displaces a good model; when the default is deleted there is none until one is chosen or
the next model is saved (rather than a silent switch to whichever model is newest). The choice lives beside the
models rather than in Redis: every API replica shares the directory, and prediction keeps working while Redis is
down.
"""

import logging
import platform
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
from service.domain.network import build_network, parameter_count
from service.domain.training_config import STORED, TrainingConfig

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


def new_model_metadata(
    network: nn.Module,
    config: TrainingConfig,
    *,
    job_id: str | None,
    test_loss: float,
    test_accuracy: float,
    train_seconds: float,
    device: torch.device | str,
) -> ModelMetadata:
    """The metadata of a model trained just now: a new id, the time, its size and the software that trained it."""
    created_at = datetime.now(UTC)
    return ModelMetadata(
        id=new_model_id(created_at),
        job_id=job_id,
        created_at=created_at,
        config=config,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        parameters=parameter_count(network),
        train_seconds=train_seconds,
        device=str(device),
        versions=software_versions(),
    )


def save_model(model_dir: Path, network: nn.Module, metadata: ModelMetadata, *, make_default: bool = False) -> Path:
    """Save a model; it becomes the default if `make_default`, or if the store has no default (none chosen yet, or
    the chosen one deleted or unreadable). Two first models saved at the same instant: the later one wins."""
    final = model_dir / metadata.id
    with atomic_path(final, directory=True) as staging:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
        save_file(state, staging / WEIGHTS_FILE)
        (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
    if make_default or default_model(model_dir) is None:
        _write_default(model_dir, metadata.id, chosen=make_default)
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


# What to do when there is no default: said by every answer that needs one.
CHOOSE_A_DEFAULT = (
    "choose one with POST /models/{id}/default (or `mnist-service default ID`, or the dashboard's models list), "
    "or name one with ?model_id="
)
# The default file holds the model's id, then this word when no one chose it (it was the first model saved).
_FIRST_SAVED = "first-saved"


def choose_default_model(model_dir: Path, model_id: str) -> None:
    """Make `model_id` the default of every API process that shares `model_dir` (not one that cannot be read)."""
    load_metadata(model_dir, model_id)
    _write_default(model_dir, model_id, chosen=True)


def _write_default(model_dir: Path, model_id: str, chosen: bool) -> None:
    with atomic_path(model_dir / DEFAULT_FILE) as staging:  # readers see the old choice or the new one
        staging.write_text(f"{model_id}\n" if chosen else f"{model_id}\n{_FIRST_SAVED}\n")


def _default_record(model_dir: Path) -> tuple[str, bool] | None:
    """The id the default file names and whether someone chose it, whether or not that model is still there."""
    try:
        words = (model_dir / DEFAULT_FILE).read_text().split()
    except FileNotFoundError:
        return None
    return (words[0], _FIRST_SAVED not in words[1:]) if words else None


def default_model(model_dir: Path) -> tuple[str, bool] | None:
    """The default model's id and whether someone chose it (false: it was the first model saved), while it exists
    and can be read; else None (see `no_default_reason`)."""
    record = _default_record(model_dir)
    if record is None or not model_exists(model_dir, record[0]) or not _readable(model_dir, record[0]):
        return None
    return record


def default_model_id(model_dir: Path) -> str | None:
    """The model that serves when none is named; None when there is no default (see `no_default_reason`)."""
    default = default_model(model_dir)
    return default[0] if default else None


def no_default_reason(model_dir: Path) -> str:
    """Why `default_model` is None, and what to do, for the user."""
    if not model_ids(model_dir):
        return "no trained model yet: POST /jobs first"
    record = _default_record(model_dir)
    if record is None:
        return f"no default model yet: {CHOOSE_A_DEFAULT}"
    model_id = record[0]
    if model_exists(model_dir, model_id):
        return f"no default model: the default, {model_id!r}, cannot be read (see the API's log); {CHOOSE_A_DEFAULT}"
    return f"no default model: the default, {model_id!r}, was deleted; {CHOOSE_A_DEFAULT}"


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
