"""The model listing: a line per saved model, and which one /predict uses by default."""

from datetime import datetime

from pydantic import BaseModel, Field

from service.domain.model_metadata import ModelMetadata
from service.domain.training_config import TrainingConfig


def _describe(config: TrainingConfig) -> str:
    """A model's config in one line, e.g. `conv 8-16 5x5 valid, dense 10; sgd 0.15, 100 batches of 64`."""
    conv = f"conv {'-'.join(map(str, config.conv_filters))} {config.kernel_size}x{config.kernel_size} {config.padding}"
    if config.batch_norm:
        conv += " + batch norm"
    dense = "-".join(map(str, [config.hidden_units, 10] if config.hidden_units else [10]))
    dropout = f", dropout {config.dropout:g}" if config.dropout else ""
    length = f"{config.epochs:g} epochs" if config.epochs is not None else f"{config.train_batches} batches"
    training = f"{config.optimizer} {config.learning_rate:g}, {length} of {config.batch_size}"
    return f"{conv}, dense {dense}{dropout}; {training}"


class ModelSummary(BaseModel):
    id: str
    job_id: str | None
    created_at: datetime
    test_accuracy: float = Field(description="Accuracy on the full 10,000-image test set.")
    parameters: int
    summary: str = Field(description="The network and its training in one line; GET /models/{id} has all.")

    @classmethod
    def of(cls, metadata: ModelMetadata) -> "ModelSummary":
        return cls(**metadata.model_dump(include=set(cls.model_fields)), summary=_describe(metadata.config))


class DefaultModel(BaseModel):
    model_id: str | None = Field(
        description="The model /predict uses without `?model_id=`; null when there is none (see `reason`)."
    )
    chosen: bool = Field(
        description="true: someone chose it (POST /models/{id}/default, or its job's `make_default`); false: it "
        "became the default as the first model saved into a store without one."
    )
    reason: str | None = Field(
        None,
        description="Only when `model_id` is null: why there is no default (none trained yet, or the default "
        "was deleted), and how to choose one.",
    )


class ModelList(BaseModel):
    default: DefaultModel
    models: list[ModelSummary] = Field(description="Newest first.")
