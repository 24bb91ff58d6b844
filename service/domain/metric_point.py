"""One training batch's numbers: what the worker publishes and the API serves, batch by batch."""

from pydantic import BaseModel, Field


class MetricPoint(BaseModel):
    attempt: int = Field(1, description="1, or the retry this point belongs to (see `retries`).")
    batch: int = Field(description="1-based training batch number.")
    loss: float = Field(description="Training loss of this batch.")
    accuracy: float = Field(description="Training accuracy of this batch.")
    elapsed_s: float = Field(description="Seconds since training started.")
    val_loss: float | None = Field(None, description="Loss on `test_batch_size` test images (every `test_every`).")
    val_accuracy: float | None = None
