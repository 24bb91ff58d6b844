"""The training configuration: what a job trains and how, with the TensorFlow.js tutorial's defaults.

``TrainingConfig`` is shared by the API (validation of ``POST /jobs``) and the worker (the job's argument).
Its defaults are the tutorial's, so ``POST /jobs {}`` reproduces the tutorial.
"""

import math
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.domain.mnist import IMAGE_SIDE, TRAIN_SIZE

# Named configurations. Explicit fields in a request override the preset's.
PRESETS: dict[str, dict[str, Any]] = {
    # The TensorFlow.js tutorial exactly: every field's default.
    "tutorial": {},
    # The shortest CPU training found to reach 99% on the full test set (3 seeds: 99.02-99.17%).
    "fast": {
        "conv_filters": [16, 32],
        "batch_norm": True,
        "optimizer": "adam",
        "learning_rate": 0.03,
        "lr_schedule": "onecycle",
        "label_smoothing": 0.1,
        "batch_size": 128,
        "epochs": 1.0,
        "test_every": 100,
    },
    # The best accuracy found within about a minute of CPU training.
    "best": {
        "conv_filters": [16, 32],
        "batch_norm": True,
        "hidden_units": 128,
        "dropout": 0.2,
        "optimizer": "adam",
        "learning_rate": 0.01,
        "lr_schedule": "onecycle",
        "label_smoothing": 0.1,
        "batch_size": 128,
        "epochs": 5.0,
        "test_every": 200,
    },
}


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: str = Field("tutorial", description=f"A named configuration: {', '.join(PRESETS)}.")
    # The network: conv (+ optional batch norm) + ReLU + 2x2 max-pool per entry, then dense layers.
    conv_filters: list[int] = Field([8, 16], min_length=1, max_length=4, description="Filters per conv layer.")
    kernel_size: int = Field(5, ge=1, le=7, description="Square kernel side of every conv layer.")
    padding: Literal["valid", "same"] = "valid"
    batch_norm: bool = False
    hidden_units: int = Field(0, ge=0, le=1024, description="Units of an optional hidden dense layer; 0 = none.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the dense layers.")
    # The optimisation.
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    learning_rate: float = Field(0.15, gt=0.0, le=10.0, description="The (peak, with one-cycle) learning rate.")
    lr_schedule: Literal["constant", "onecycle"] = Field(
        "constant", description="`onecycle`: warm up to `learning_rate`, then anneal to ~0 by the last batch."
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    precision: Literal["fp32", "bf16"] = Field("fp32", description="`bf16`: mixed precision (autocast).")
    batch_size: int = Field(64, ge=1, le=8192)
    train_batches: int | None = Field(100, ge=1, le=1_000_000, description="Batches to train; or give `epochs`.")
    epochs: float | None = Field(None, gt=0.0, le=100.0, description="Passes over the 60,000 training images.")
    test_batch_size: int = Field(1000, ge=1, le=10_000, description="Test images evaluated every `test_every` batches.")
    test_every: int = Field(5, ge=1, le=1_000_000)
    seed: int | None = Field(None, ge=0, lt=2**32, description="Same seed + same device = same metrics.")
    retries: int = Field(0, ge=0, le=5, description="Run again from scratch if the worker dies mid-job.")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("preset", "tutorial")
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        preset = dict(PRESETS[name])
        if "train_batches" in data or "epochs" in data:  # the request's length replaces the preset's
            preset.pop("train_batches", None)
            preset.pop("epochs", None)
        return {**preset, **data}

    @model_validator(mode="after")
    def _check_consistency(self) -> "TrainingConfig":
        if self.epochs is not None:
            if "train_batches" in self.model_fields_set and self.train_batches is not None:
                raise ValueError("give either train_batches or epochs, not both")
            self.train_batches = None
        elif self.train_batches is None:
            raise ValueError("give train_batches or epochs")
        if self.feature_side < 1:
            raise ValueError(
                f"{len(self.conv_filters)} conv layers with kernel_size {self.kernel_size} and padding "
                f"{self.padding!r} shrink the 28x28 image to nothing: use fewer layers, a smaller kernel "
                "or padding 'same'"
            )
        return self

    @property
    def conv_padding(self) -> int:
        return self.kernel_size // 2 if self.padding == "same" else 0

    @property
    def feature_side(self) -> int:
        """Side of the feature maps after the last conv + pool block (0 when they vanish)."""
        side = IMAGE_SIDE
        for _ in self.conv_filters:
            side = max(side + 2 * self.conv_padding - self.kernel_size + 1, 0) // 2
        return side

    @property
    def total_batches(self) -> int:
        if self.epochs is not None:
            return math.ceil(self.epochs * TRAIN_SIZE / self.batch_size)
        return self.train_batches

    def resolved(self) -> "TrainingConfig":
        """The config a job runs with: a missing seed is drawn now, so every run can be repeated."""
        if self.seed is not None:
            return self
        return self.model_copy(update={"seed": secrets.randbelow(2**32)})
