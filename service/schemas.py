"""The public data shapes: the training configuration, jobs and metric points, predictions and models.

``TrainingConfig`` is shared by the API (validation of ``POST /jobs``) and the worker (the job's argument).
Its defaults are the TensorFlow.js tutorial's, so ``POST /jobs {}`` reproduces the tutorial.
"""

import base64
import binascii
import math
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PlainValidator, Tag, WithJsonSchema, model_validator

TRAIN_SIZE = 60_000
IMAGE_SIDE = 28

# Named configurations. Explicit fields in a request override the preset's.
PRESETS: dict[str, dict[str, Any]] = {
    # The TensorFlow.js tutorial exactly: every field's default.
    "tutorial": {},
    # The shortest CPU training found to reach 99% on the full test set (3 seeds: 99.02-99.17%).
    "fast": {
        "conv_filters": [16, 32], "batch_norm": True, "optimizer": "adam", "learning_rate": 0.03,
        "lr_schedule": "onecycle", "label_smoothing": 0.1, "batch_size": 128, "epochs": 1.0, "test_every": 100,
    },
    # The best accuracy found within about a minute of CPU training.
    "best": {
        "conv_filters": [16, 32], "batch_norm": True, "hidden_units": 128, "dropout": 0.2, "optimizer": "adam",
        "learning_rate": 0.01, "lr_schedule": "onecycle", "label_smoothing": 0.1, "batch_size": 128,
        "epochs": 5.0, "test_every": 200,
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


JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
ENDED: tuple[JobStatus, ...] = ("succeeded", "failed", "canceled")  # the terminal states


class MetricPoint(BaseModel):
    attempt: int = Field(1, description="1, or the retry this point belongs to (see `retries`).")
    batch: int = Field(description="1-based training batch number.")
    loss: float = Field(description="Training loss of this batch.")
    accuracy: float = Field(description="Training accuracy of this batch.")
    elapsed_s: float = Field(description="Seconds since training started.")
    val_loss: float | None = Field(None, description="Loss on `test_batch_size` test images (every `test_every`).")
    val_accuracy: float | None = None


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
    error: str | None = None


class JobList(BaseModel):
    jobs: list[Job]
    total: int
    offset: int
    limit: int


class MetricsPage(BaseModel):
    points: list[MetricPoint]
    cursor: str = Field(description="Pass as `since` to get only newer points.")
    status: JobStatus


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


# Prediction: the JSON bodies of POST /predict, its answer, and the model listing.
# The pixel grid's shape and values are checked by `service.images.pixels_to_array`, which names the bad
# row or value; the schema only describes them.
_PIXEL = {"type": "number", "minimum": 0, "maximum": 255}
_PIXEL_GRID_SCHEMA = {
    "oneOf": [
        {"title": f"{IMAGE_SIDE} rows of {IMAGE_SIDE}", "type": "array", "minItems": IMAGE_SIDE, "maxItems": IMAGE_SIDE,
         "items": {"type": "array", "items": _PIXEL, "minItems": IMAGE_SIDE, "maxItems": IMAGE_SIDE}},
        {"title": f"{IMAGE_SIDE**2} values, row by row", "type": "array", "items": _PIXEL,
         "minItems": IMAGE_SIDE**2, "maxItems": IMAGE_SIDE**2},
    ]
}


def _decode_base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("must be a base64 string")
    if value.startswith("data:"):  # what a canvas's toDataURL() gives: data:image/png;base64,<data>
        value = value.partition(",")[2]
    try:
        # Line breaks are allowed: `base64` wraps its output at 76 characters.
        return base64.b64decode("".join(value.split()), validate=True)
    except binascii.Error as error:
        raise ValueError(f"not valid base64: {error}") from None


class PixelsInput(BaseModel):
    """A digit already like MNIST's (light ink on black, centred), used as sent."""

    model_config = ConfigDict(extra="forbid")

    pixels: Annotated[list[Any], WithJsonSchema(_PIXEL_GRID_SCHEMA)] = Field(
        description=f"{IMAGE_SIDE} rows of {IMAGE_SIDE} values, or {IMAGE_SIDE**2} values row by row."
    )
    scale: Literal["255", "1"] = Field("255", description='"255": values are 0..255; "1": values are 0..1.')


class ImageInput(BaseModel):
    """A picture of a digit (PNG, JPEG, GIF, BMP, WebP, TIFF; any size): cropped, scaled and centred as MNIST's."""

    model_config = ConfigDict(extra="forbid")

    image: Annotated[bytes, PlainValidator(_decode_base64),
                     WithJsonSchema({"type": "string", "contentEncoding": "base64"})] = Field(
        description="The picture's file in base64, or a data: URL."
    )


def _input_kind(value: Any) -> str | None:
    """The tag of a JSON object in the unions below: the first of their keys that it has."""
    if isinstance(value, dict):
        return next((key for key in ("pixels", "image", "instances") if key in value), None)
    return None


Instance = Annotated[
    Annotated[PixelsInput, Tag("pixels")] | Annotated[ImageInput, Tag("image")],
    Discriminator(_input_kind, custom_error_type="missing_input", custom_error_message='give "pixels" or "image"'),
]


class BatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[Instance] = Field(
        min_length=1, description="Pictures and pixel grids, answered in order; at most `MNIST_MAX_BATCH` (256)."
    )


PredictRequest = Annotated[
    Annotated[PixelsInput, Tag("pixels")]
    | Annotated[ImageInput, Tag("image")]
    | Annotated[BatchInput, Tag("instances")],
    Discriminator(_input_kind, custom_error_type="missing_input",
                  custom_error_message='give "pixels", "image" or "instances"'),
]


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="What is wrong, naming the field, file or limit: a sentence; or, for a body that does not "
        "fit the schema, FastAPI's list of errors, each naming its field in `loc`."
    )


class Prediction(BaseModel):
    digit: int = Field(ge=0, le=9, description="The most probable digit.")
    confidence: float = Field(description="Its probability.")
    probabilities: list[float] = Field(
        min_length=10, max_length=10, description="The probability of each digit, 0 to 9; they sum to 1."
    )


class Predictions(BaseModel):
    model_id: str = Field(description="The model that answered.")
    predictions: list[Prediction] = Field(description="One per image, in the order sent (a list even for one).")


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
    model_id: str | None = Field(description="The model /predict uses without `?model_id=`; null before any exists.")
    chosen: bool = Field(description="true: chosen with POST /models/{id}/default; false: the newest, by default.")


class ModelList(BaseModel):
    default: DefaultModel
    models: list[ModelSummary] = Field(description="Newest first.")


# The dashboard's helpers: the presets its form offers, and MNIST test digits for its gallery.


class PresetList(BaseModel):
    presets: dict[str, TrainingConfig] = Field(description="Each preset's full configuration, by name.")


class Sample(BaseModel):
    index: int = Field(description="Position in the 10,000-image MNIST test set.")
    label: int = Field(ge=0, le=9)
    pixels: list[int] = Field(
        min_length=IMAGE_SIDE**2, max_length=IMAGE_SIDE**2, description="28 rows of 28 values 0..255, row by row."
    )


class SampleList(BaseModel):
    samples: list[Sample]
