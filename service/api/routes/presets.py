"""The named training configurations, so that a client (the dashboard's form) offers exactly these."""

from fastapi import APIRouter

from service.domain.training_config import PRESETS, TrainingConfig
from service.schemas.dashboard import PresetList

router = APIRouter(prefix="/presets", tags=["jobs"])


@router.get("", response_model=PresetList)
def list_presets() -> PresetList:
    """Each preset with every field filled in: what `POST /jobs {"preset": name}` would train."""
    return PresetList(presets={name: TrainingConfig(preset=name) for name in PRESETS})
