"""The model store: list, inspect and delete trained models, and choose the one /predict uses by default."""

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, status

from service import store
from service.api.deps import ModelCacheDep, SettingsDep
from service.schemas import DefaultModel, ErrorResponse, ModelList, ModelMetadata, ModelSummary

router = APIRouter(prefix="/models", tags=["models"])

ModelId = Annotated[str, Path(pattern=store.MODEL_ID_PATTERN, description="e.g. 20260101T120000Z-1a2b3c4d")]
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such model"}}


def _default(model_dir: FilePath) -> DefaultModel:
    chosen = store.chosen_default_model(model_dir)
    return DefaultModel(model_id=chosen or store.default_model_id(model_dir), chosen=chosen is not None)


@router.get("", response_model=ModelList)
def list_models(settings: SettingsDep) -> ModelList:
    """Every model, newest first, and the default: the chosen one, else the newest."""
    models = [ModelSummary.of(metadata) for metadata in store.list_models(settings.model_dir)]
    return ModelList(default=_default(settings.model_dir), models=models)


@router.get("/{model_id}", response_model=ModelMetadata, responses=_NOT_FOUND)
def get_model(settings: SettingsDep, model_id: ModelId) -> ModelMetadata:
    return store.load_metadata(settings.model_dir, model_id)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
def delete_model(settings: SettingsDep, models: ModelCacheDep, model_id: ModelId) -> None:
    """Delete a model. If it was the chosen default, the newest model becomes the default."""
    store.delete_model(settings.model_dir, model_id)
    # Other API replicas need no telling: they check the store before they use a cached network.
    models.discard(model_id)


@router.post("/{model_id}/default", response_model=DefaultModel, responses=_NOT_FOUND)
def choose_default(settings: SettingsDep, model_id: ModelId) -> DefaultModel:
    """Make this model the one /predict uses without `?model_id=`, for every API replica sharing the store."""
    store.choose_default_model(settings.model_dir, model_id)
    return DefaultModel(model_id=model_id, chosen=True)
