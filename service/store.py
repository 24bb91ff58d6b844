"""The model store: ``<model_dir>/<model_id>/weights.safetensors`` + ``metadata.json``.

Weights are written and read with safetensors only (never pickle). A model folder appears atomically
(written under a temporary name, then renamed), so readers never see half a model.
"""

import json
import os
import re
import secrets
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from service.network import build_network
from service.schemas import ModelMetadata

MODEL_ID_PATTERN = r"^\d{8}T\d{6}Z-[0-9a-f]{8}$"
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"


class ModelNotFound(LookupError):
    pass


def new_model_id(created_at: datetime) -> str:
    """Ids sort by creation time, which is what listings want, and carry no user input."""
    return f"{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def save_model(model_dir: Path, network: nn.Module, metadata: ModelMetadata) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{metadata.id}.", dir=model_dir))
    try:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
        save_file(state, staging / WEIGHTS_FILE)
        (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
        os.chmod(staging, 0o755)
        final = model_dir / metadata.id
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _folder(model_dir: Path, model_id: str) -> Path:
    if not re.fullmatch(MODEL_ID_PATTERN, model_id) or not (model_dir / model_id / METADATA_FILE).is_file():
        raise ModelNotFound(f"no model {model_id!r}")
    return model_dir / model_id


def load_metadata(model_dir: Path, model_id: str) -> ModelMetadata:
    return ModelMetadata.model_validate_json((_folder(model_dir, model_id) / METADATA_FILE).read_text())


def load_network(model_dir: Path, model_id: str) -> tuple[nn.Module, ModelMetadata]:
    metadata = load_metadata(model_dir, model_id)
    network = build_network(metadata.config)
    network.load_state_dict(load_file(_folder(model_dir, model_id) / WEIGHTS_FILE))
    return network.eval(), metadata


def list_models(model_dir: Path) -> list[ModelMetadata]:
    """Every model, newest first."""
    if not model_dir.is_dir():
        return []
    ids = sorted((p.name for p in model_dir.iterdir() if re.fullmatch(MODEL_ID_PATTERN, p.name)), reverse=True)
    return [load_metadata(model_dir, model_id) for model_id in ids]
