"""The model store: ``<model_dir>/<model_id>/weights.safetensors`` + ``metadata.json``.

Weights are written and read with safetensors only (never pickle). A model folder appears atomically
(written under a temporary name, then renamed), so readers never see half a model.

The default model is the one named in ``<model_dir>/default-model`` (written with ``choose_default_model``),
else the newest. It lives beside the models rather than in Redis: every API replica shares the directory,
and prediction keeps working while Redis is down.
"""

import re
import secrets
import shutil
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file
from torch import nn

from service.domain.files import atomic_path
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig

MODEL_ID_PATTERN = r"^\d{8}T\d{6}Z-[0-9a-f]{8}$"
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
DEFAULT_FILE = "default-model"


class ModelMetadata(BaseModel):
    """What ``metadata.json`` beside a model's weights says about it."""

    id: str
    job_id: str | None
    created_at: datetime
    config: TrainingConfig
    test_accuracy: float = Field(description="Accuracy on the full 10,000-image test set.")
    test_loss: float
    parameters: int
    train_seconds: float
    device: str
    versions: dict[str, str] = Field(description="Versions of the software that trained it.")


class ModelNotFound(LookupError):
    pass


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


def load_metadata(model_dir: Path, model_id: str) -> ModelMetadata:
    return ModelMetadata.model_validate_json((_folder(model_dir, model_id) / METADATA_FILE).read_text())


def weights_file(model_dir: Path, model_id: str) -> Path:
    """The model's safetensors file; other formats are cached beside it (``service.serving.export``)."""
    return _folder(model_dir, model_id) / WEIGHTS_FILE


def load_network(model_dir: Path, model_id: str) -> tuple[nn.Module, ModelMetadata]:
    metadata = load_metadata(model_dir, model_id)
    network = build_network(metadata.config)
    network.load_state_dict(load_file(_folder(model_dir, model_id) / WEIGHTS_FILE))
    return network.eval(), metadata


def model_ids(model_dir: Path) -> list[str]:
    """Every model's id, newest first (ids sort by creation time; staging folders are hidden names)."""
    if not model_dir.is_dir():
        return []
    return sorted((p.name for p in model_dir.iterdir() if re.fullmatch(MODEL_ID_PATTERN, p.name)), reverse=True)


def list_models(model_dir: Path) -> list[ModelMetadata]:
    """Every model, newest first."""
    models = []
    for model_id in model_ids(model_dir):
        try:
            models.append(load_metadata(model_dir, model_id))
        except ModelNotFound:  # deleted since the directory was listed
            continue
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
    """Make `model_id` the default of every API process that shares `model_dir`."""
    _folder(model_dir, model_id)
    with atomic_path(model_dir / DEFAULT_FILE) as staging:  # readers see the old choice or the new one
        staging.write_text(f"{model_id}\n")


def chosen_default_model(model_dir: Path) -> str | None:
    """The model chosen as the default, while it exists: once it is deleted, the newest takes over."""
    try:
        model_id = (model_dir / DEFAULT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return model_id if model_exists(model_dir, model_id) else None


def default_model_id(model_dir: Path) -> str | None:
    """The model that serves when none is named: the chosen one, else the newest; None before any exists."""
    return chosen_default_model(model_dir) or next(iter(model_ids(model_dir)), None)
