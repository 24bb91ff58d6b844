"""The model store: list, inspect and delete trained models, and choose the one /predict uses by default."""

import os
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, BinaryIO, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from service.api.deps import ModelCacheDep, SettingsDep
from service.domain import model_store
from service.domain.model_metadata import ModelMetadata
from service.schemas.errors import ErrorResponse
from service.schemas.models import DefaultModel, ModelList, ModelSummary
from service.serving import export

router = APIRouter(prefix="/models", tags=["models"])

ModelId = Annotated[str, Path(pattern=model_store.MODEL_ID_PATTERN, description="e.g. 20260101T120000Z-1a2b3c4d")]
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such model"}}
DownloadFormat = Annotated[
    Literal["safetensors", "onnx"],
    Query(
        description=f"`safetensors`: the weights as stored; `onnx`: the network + softmax, opset {export.ONNX_OPSET}, "
        f"input `{export.ONNX_INPUT}` float32 [N, 1, 28, 28] in 0..1, output `{export.ONNX_OUTPUT}` float32 [N, 10]."
    ),
]
_CHUNK_BYTES = 64 * 1024


def _default(model_dir: FilePath) -> DefaultModel:
    default = model_store.default_model(model_dir)
    if default is None:
        return DefaultModel(model_id=None, chosen=False, reason=model_store.no_default_reason(model_dir))
    model_id, chosen = default
    return DefaultModel(model_id=model_id, chosen=chosen)


@router.get("", response_model=ModelList)
def list_models(settings: SettingsDep) -> ModelList:
    """Every model, newest first, and the default: the first model saved, or the one chosen since."""
    models = [ModelSummary.of(metadata) for metadata in model_store.list_models(settings.model_dir)]
    return ModelList(default=_default(settings.model_dir), models=models)


@router.get("/{model_id}", response_model=ModelMetadata, responses=_NOT_FOUND)
def get_model(settings: SettingsDep, model_id: ModelId) -> ModelMetadata:
    return model_store.load_metadata(settings.model_dir, model_id)


@router.get(
    "/{model_id}/download",
    response_class=FileResponse,
    responses={
        **_NOT_FOUND,
        200: {"content": {"application/octet-stream": {}}, "description": "The model's file"},
    },
)
def download_model(
    settings: SettingsDep, model_id: ModelId, format: DownloadFormat = "safetensors"
) -> StreamingResponse:
    """The model's weights as a file: safetensors, or ONNX (exported on the first request, then cached)."""
    if format == "onnx":
        name = export.onnx_file(settings.model_dir, model_id).name
    else:
        name = model_store.WEIGHTS_FILE
    return _attachment(model_store.open_file(settings.model_dir, model_id, name), f"{model_id}.{format}")


def _attachment(file: BinaryIO, filename: str) -> StreamingResponse:
    """A file opened here, before the answer starts (not by path, as FileResponse does when it sends): a model
    deleted after this is still sent whole, and one deleted before was a 404."""

    def chunks() -> Iterator[bytes]:
        with file:
            while chunk := file.read(_CHUNK_BYTES):
                yield chunk

    headers = {
        "content-length": str(os.fstat(file.fileno()).st_size),
        "content-disposition": f'attachment; filename="{filename}"',
    }
    # The file is closed when the answer ends, even if its client leaves before the first chunk.
    return StreamingResponse(
        chunks(), media_type="application/octet-stream", headers=headers, background=BackgroundTask(file.close)
    )


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
def delete_model(settings: SettingsDep, models: ModelCacheDep, model_id: ModelId) -> None:
    """Delete a model. If it was the default, there is none until one is chosen (or the next model is saved):
    /predict without `?model_id=` answers 409 and says so, rather than switching to a model nobody chose."""
    model_store.delete_model(settings.model_dir, model_id)
    # Other API replicas need no telling: they check the store before they use a cached network.
    models.discard(model_id)


@router.post("/{model_id}/default", response_model=DefaultModel, responses=_NOT_FOUND)
def choose_default(settings: SettingsDep, model_id: ModelId) -> DefaultModel:
    """Make this model the one /predict uses without `?model_id=`, for every API replica sharing the store, until
    another is chosen: models trained later do not replace it unless their job asks to (`make_default`)."""
    model_store.choose_default_model(settings.model_dir, model_id)
    return DefaultModel(model_id=model_id, chosen=True)
