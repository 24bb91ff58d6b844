"""Jobs as the API shows them: their status, progress and outcome, and pages of their metric points."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from service.domain.metric_point import MetricPoint
from service.domain.training_config import TrainingConfig

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
ENDED: tuple[JobStatus, ...] = ("succeeded", "failed", "canceled")  # the terminal states


class Progress(BaseModel):
    batch: int
    total_batches: int


class Job(BaseModel):
    id: str
    status: JobStatus
    config: TrainingConfig
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress
    latest: MetricPoint | None = Field(description="The newest metric point.")
    worker: str | None = Field(description="The worker that took the job.")
    attempt: int = Field(description="1, or more when the job was retried after its worker died.")
    model_id: str | None = None
    test_accuracy: float | None = Field(None, description="Accuracy on the full 10,000-image test set.")
    test_loss: float | None = None
    train_seconds: float | None = Field(None, description="Time spent in the training loop.")
    batches: int | None = Field(None, description="Batches trained, once succeeded: fewer when stopped early.")
    stopped_early: bool | None = Field(
        None, description="Whether the holdout reached `target_accuracy` before the last batch."
    )
    error: str | None = None

    @computed_field(description="Whether the job has ended (succeeded, failed or canceled): its status is final.")
    @property
    def ended(self) -> bool:
        return self.status in ENDED


class JobList(BaseModel):
    jobs: list[Job]
    total: int
    offset: int
    limit: int


class MetricsPage(BaseModel):
    points: list[MetricPoint]
    cursor: str = Field(description="Pass as `since` to get only newer points.")
    status: JobStatus
