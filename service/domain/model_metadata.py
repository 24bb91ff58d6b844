"""What ``metadata.json`` beside a model's weights says about it: a plain record, free of torch, so that the
client and the API's schemas can read it without importing the framework."""

from datetime import datetime

from pydantic import BaseModel, Field

from service.domain.training_config import TrainingConfig


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
