"""The training configuration: what a job trains and how, with the TensorFlow.js tutorial's defaults.

``TrainingConfig`` is shared by the API (validation of ``POST /jobs``) and the worker (the job's argument).
Its defaults are the tutorial's, so ``POST /jobs {}`` reproduces the tutorial.
"""

import math
import secrets
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from service.domain.mnist import IMAGE_SIDE, TRAIN_SIZE

# What one job may ask for, so that no request can take a worker (or Redis) for ever. Each bound admits every
# preset with room to spare; the job timeout (MNIST_JOB_TIMEOUT_S) bounds the time besides.
MAX_FILTERS = 256  # per conv layer
MAX_TOTAL_BATCHES = 100_000  # 100 epochs of the tutorial's batch of 64 are 93,750; one metric point each
MAX_PARAMETERS = 10_000_000  # 40 MB of float32 weights in the store per model; the presets have 6k to 80k
# Values the forward pass keeps for the backward pass, per batch (an estimate, see `activation_values`): 2 GiB as
# float32. The presets keep 0.9 to 4.8 million at their batch sizes; at the largest batch_size (8192) the tutorial
# keeps 110 million and `fast` 306 million.
MAX_ACTIVATION_VALUES = 2**29
# The validation context of records read back: `TrainingConfig.model_validate(data, context={STORED: True})`.
STORED = "stored"


# The schema's JSON types, and nothing else: pydantic's lax mode would also read `true` as 1 and "5" as 5, which the
# schema refuses. (An integer may be written 5.0, as JSON Schema allows: see `TrainingConfig._whole_numbers`.)
Integer = Annotated[int, Strict()]
Number = Annotated[float, Strict()]  # an integer is a number too


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Named configurations. Explicit fields in a request override the preset's.
PRESETS: dict[str, dict[str, Any]] = {
    # The TensorFlow.js tutorial exactly: every field's default.
    "tutorial": {},
    # The shortest CPU training found to reach 99% on the full test set (seeds 0-2: 99.16, 99.11, 99.09% on a
    # loaded 2-core EPYC, in 0.38-0.98x the time of bench/handwritten.py's loop interleaved with it; median 0.38).
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
    # The best accuracy found within about a minute of CPU training, on MNIST and on digits that are not MNIST's
    # (docs/handwriting.md): trained on changed images (augmentation), which both generalises and, in 4.4 epochs,
    # beats 5 epochs of the unchanged ones. Seed 0, 2 torch threads, a shared 2-core EPYC at load 1.7-1.9
    # (bench/presets.py): 99.60% in 52.0 s, where the same network unaugmented for 5 epochs made 99.37% in 53.5 s.
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
        "epochs": 4.4,
        "test_every": 200,
        "augmentation": {
            "rotation": 8.0,
            "scale": 0.08,
            "shift": 1.0,
            "shear": 8.0,
            "elastic": 0.6,
            "thickness": 0.3,
            "blur": 0.4,
            "noise": 0.02,
        },
    },
    # For a GPU: 99% in as little training time as a GPU allows. A GPU spends its time per batch (launches, Python),
    # not per image: so large batches (few of them), a wider network that costs it nothing more, bf16, and one
    # validation only, at the end. Provisional until measured on a GPU (bench/gpu.sh); on a CPU in fp32, seed 0:
    # 99.20% (with [16, 32] filters: 98.9-99.1%).
    "gpu": {
        "conv_filters": [32, 64],
        "batch_norm": True,
        "optimizer": "adam",
        "learning_rate": 0.03,
        "lr_schedule": "onecycle",
        "label_smoothing": 0.1,
        "precision": "bf16",
        "batch_size": 512,
        "epochs": 2.0,
        "test_every": 1000,
    },
}

# Digits that are not MNIST's (other writers, the dashboard's pad, fonts, photos): `best` is the preset for them too
# (pad 98.3%, fonts 96.7%, photos 96.0%). Stronger augmentation (larger warps, thicker strokes, more blur, longer
# training) read them within a few pictures of it, and MNIST worse (docs/handwriting.md lists the configurations
# tried, bench/presets.py trains them); the name says what it is for.
PRESETS["handwriting"] = PRESETS["best"]


class Augmentation(BaseModel):
    """Random changes to each training image, drawn afresh every batch (from the job's seed) so that the network
    learns digits as other people write, draw and photograph them. All off by default; never applied to the test
    or holdout images. The order: stroke thickness, then one warp (affine + elastic), then blur, then noise."""

    model_config = ConfigDict(extra="forbid")

    rotation: Number = Field(0.0, ge=0.0, le=180.0, description="Rotate by a random angle within ± this, in degrees.")
    scale: Number = Field(
        0.0, ge=0.0, le=0.5, description="Scale by a random factor within 1 ± this (e.g. 0.15: 85% to 115%)."
    )
    shift: Number = Field(
        0.0, ge=0.0, le=14.0, description="Shift by a random offset within ± this many pixels (of 28) each way."
    )
    shear: Number = Field(
        0.0, ge=0.0, le=45.0, description="Slant by a random horizontal shear within ± this, in degrees."
    )
    elastic: Number = Field(
        0.0,
        ge=0.0,
        le=5.0,
        description="Elastic distortion: the standard deviation, in pixels, of a random smooth displacement field.",
    )
    elastic_scale: Number = Field(
        7.0,
        ge=2.0,
        le=28.0,
        description="Pixels between independent displacements of the elastic field (a coarse grid of that spacing, "
        "upsampled smoothly): smaller is more wiggly.",
    )
    thickness: Number = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Thicken or thin the strokes by a random amount within ± this many pixels (3x3 dilation or "
        "erosion, fractions blended).",
    )
    blur: Number = Field(0.0, ge=0.0, le=3.0, description="Gaussian blur of a random sigma up to this, in pixels.")
    noise: Number = Field(
        0.0, ge=0.0, le=0.5, description="Gaussian noise of this standard deviation added to the 0..1 pixels."
    )

    @property
    def enabled(self) -> bool:
        return any(
            (self.rotation, self.scale, self.shift, self.shear, self.elastic, self.thickness, self.blur, self.noise)
        )


def _declare_cross_field_rules(schema: dict[str, Any], model: type["TrainingConfig"]) -> None:
    """What `_check_consistency` refuses, stated in the JSON schema too, so that the OpenAPI document admits no
    configuration that the API refuses. The size limits of `_check_size` are products of several fields, which JSON
    Schema cannot state: their 422s name the field to change."""
    length = {"train_batches": {"type": "integer"}, "epochs": {"type": "number"}}
    rules: list[dict[str, Any]] = [
        {"not": {"properties": length, "required": list(length)}},  # not both
        {  # `train_batches: null` leaves only epochs to say how long
            "if": {"properties": {"train_batches": {"type": "null"}}, "required": ["train_batches"]},
            "then": {"properties": {"epochs": {"type": "number"}}, "required": ["epochs"]},
        },
        {  # the target is checked on the holdout
            "if": {"properties": {"target_accuracy": {"type": "number"}}, "required": ["target_accuracy"]},
            "then": {"properties": {"holdout": {"minimum": 1}}, "required": ["holdout"]},
        },
    ]
    # Without padding, each conv layer shrinks the image by its kernel: from some kernel size on, a number of layers
    # leaves nothing (an absent kernel_size or padding is the default, which these rules then hold to).
    fields = schema["properties"]
    kernels = range(fields["kernel_size"]["minimum"], fields["kernel_size"]["maximum"] + 1)
    for layers in range(2, fields["conv_filters"]["maxItems"] + 1):
        vanishing = [
            kernel
            for kernel in kernels
            if model.model_construct(conv_filters=[1] * layers, kernel_size=kernel, padding="valid").feature_side < 1
        ]
        if vanishing:
            rules.append(
                {
                    "if": {"properties": {"padding": {"const": "valid"}, "kernel_size": {"minimum": min(vanishing)}}},
                    "then": {"properties": {"conv_filters": {"maxItems": layers - 1}}},
                }
            )
    schema["allOf"] = rules


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_declare_cross_field_rules)

    preset: str = Field(
        "tutorial",
        description=f"A named configuration: {', '.join(PRESETS)}.",
        json_schema_extra={"enum": list(PRESETS)},  # `_apply_preset` refuses the others, with a clearer message
    )
    # The network: conv (+ optional batch norm) + ReLU + 2x2 max-pool per entry, then dense layers.
    conv_filters: list[Annotated[Integer, Field(ge=1, le=MAX_FILTERS)]] = Field(
        [8, 16], min_length=1, max_length=4, description=f"Filters per conv layer, 1 to {MAX_FILTERS} each."
    )
    kernel_size: Integer = Field(5, ge=1, le=7, description="Square kernel side of every conv layer.")
    padding: Literal["valid", "same"] = "valid"
    batch_norm: StrictBool = False  # strict, as the schema's boolean: not 0, 1 or "yes"
    hidden_units: Integer = Field(0, ge=0, le=1024, description="Units of an optional hidden dense layer; 0 = none.")
    dropout: Number = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the dense layers.")
    # The optimisation.
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    learning_rate: Number = Field(0.15, gt=0.0, le=10.0, description="The (peak, with one-cycle) learning rate.")
    lr_schedule: Literal["constant", "onecycle"] = Field(
        "constant", description="`onecycle`: warm up to `learning_rate`, then anneal to ~0 by the last batch."
    )
    label_smoothing: Number = Field(0.0, ge=0.0, lt=1.0)
    precision: Literal["fp32", "bf16"] = Field("fp32", description="`bf16`: mixed precision (autocast).")
    batch_size: Integer = Field(64, ge=1, le=8192)
    train_batches: Integer | None = Field(
        100, ge=1, le=MAX_TOTAL_BATCHES, description="Batches to train; or give `epochs`."
    )
    epochs: Number | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description=f"Passes over the 60,000 training images; at most {MAX_TOTAL_BATCHES:,} batches in all.",
    )
    test_batch_size: Integer = Field(
        1000, ge=1, le=10_000, description="Test images evaluated every `test_every` batches."
    )
    test_every: Integer = Field(5, ge=1, le=1_000_000)
    holdout: Integer = Field(
        0,
        ge=0,
        le=20_000,
        description="Training images held out (the last ones of the 60,000, never the test set) and not trained "
        "on: with a holdout, every `test_every` batches the validation metrics are on the whole holdout instead of "
        "test images.",
    )
    target_accuracy: Number | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Stop training once the accuracy on the holdout reaches this (checked every `test_every` "
        "batches); needs a `holdout`.",
    )
    seed: Integer | None = Field(None, ge=0, lt=2**32, description="Same seed + same device = same metrics.")
    retries: Integer = Field(0, ge=0, le=5, description="Run again from scratch if the worker dies mid-job.")
    augmentation: Augmentation = Field(
        default_factory=Augmentation,
        description="Random changes to the training images (off by default); a request's fields are merged into "
        "its preset's.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    make_default: StrictBool = Field(
        False,
        description="Make the model the one /predict uses by default once it is saved. Without it, only the first "
        "model saved into a store without a default becomes it: a trial job never displaces a chosen model.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any) -> Any:
        """5.0 as 5: to JSON Schema it is an integer, which a strict `int` would refuse."""
        return [_whole(item) for item in value] if isinstance(value, list) else _whole(value)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("preset", "tutorial")
        if not isinstance(name, str):  # not a name (`{}` cannot even be looked up): the field's check says so
            return data
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        preset = dict(PRESETS[name])
        if "train_batches" in data or "epochs" in data:  # the request's length replaces the preset's
            preset.pop("train_batches", None)
            preset.pop("epochs", None)
        merged = {**preset, **data}
        if isinstance(data.get("augmentation"), dict) and isinstance(preset.get("augmentation"), dict):
            # One augmentation field changed keeps the preset's others (the dashboard sends only what differs).
            merged["augmentation"] = {**preset["augmentation"], **data["augmentation"]}
        return merged

    @model_validator(mode="after")
    def _check_consistency(self, info: ValidationInfo) -> "TrainingConfig":
        if self.epochs is not None:
            if "train_batches" in self.model_fields_set and self.train_batches is not None:
                raise ValueError("give either train_batches or epochs, not both")
            self.train_batches = None
        elif self.train_batches is None:
            raise ValueError("give train_batches or epochs")
        if self.target_accuracy is not None and not self.holdout:
            raise ValueError("target_accuracy is checked on the holdout: give a holdout (e.g. 5000 images)")
        if self.feature_side < 1:
            raise ValueError(
                f"{len(self.conv_filters)} conv layers with kernel_size {self.kernel_size} and padding "
                f"{self.padding!r} shrink the 28x28 image to nothing: use fewer layers, a smaller kernel "
                "or padding 'same'"
            )
        # A stored record (a job in Redis, a model's metadata) was within the bounds of the version that wrote it:
        # it is read as it is, so lowering a bound never makes the listings unreadable.
        if not (info.context or {}).get(STORED):
            self._check_size()
        return self

    def _check_size(self) -> None:
        """Refuse the work that no worker should be given: too many batches, weights or activations. Each error
        names the field to change, so the API's 422 points at it."""
        if self.epochs is not None and self.total_batches > MAX_TOTAL_BATCHES:
            _refuse(
                "epochs",
                self.epochs,
                "too_many_batches",
                "{epochs:g} epochs with batch_size {batch_size} are {batches:,} batches; at most {limit:,}: "
                "fewer epochs or a larger batch_size",
                epochs=self.epochs,
                batch_size=self.batch_size,
                batches=self.total_batches,
                limit=MAX_TOTAL_BATCHES,
            )
        if self.parameters > MAX_PARAMETERS:
            conv = self._conv_parameters
            field = "hidden_units" if self.hidden_units and self.parameters - conv > conv else "conv_filters"
            _refuse(
                field,
                getattr(self, field),
                "too_many_parameters",
                "the network would have {parameters:,} parameters; at most {limit:,}: fewer conv_filters or "
                "hidden_units (or more conv layers, which shrink the features the dense layers see)",
                parameters=self.parameters,
                limit=MAX_PARAMETERS,
            )
        if self.activation_values > MAX_ACTIVATION_VALUES:
            _refuse(
                "batch_size",
                self.batch_size,
                "too_many_activations",
                "a batch of {batch_size} images would keep about {values:,} activation values for the backward "
                "pass; at most {limit:,} (2 GiB of float32): a smaller batch_size, or fewer conv_filters",
                batch_size=self.batch_size,
                values=self.activation_values,
                limit=MAX_ACTIVATION_VALUES,
            )

    @property
    def conv_padding(self) -> int:
        return self.kernel_size // 2 if self.padding == "same" else 0

    @property
    def feature_side(self) -> int:
        """Side of the feature maps after the last conv + pool block (0 when they vanish)."""
        return self._conv_sides()[-1][1]

    def _conv_sides(self) -> list[tuple[int, int]]:
        """Each conv layer's output side and, after its 2x2 max-pool, the block's output side."""
        sides, side = [], IMAGE_SIDE
        for _ in self.conv_filters:
            conv = max(side + 2 * self.conv_padding - self.kernel_size + 1, 0)
            side = conv // 2
            sides.append((conv, side))
        return sides

    @property
    def _conv_parameters(self) -> int:
        count, channels = 0, 1
        for filters in self.conv_filters:
            # A bias per filter, or batch norm's scale and shift (then the conv has no bias).
            count += channels * filters * self.kernel_size**2 + (2 * filters if self.batch_norm else filters)
            channels = filters
        return count

    @property
    def parameters(self) -> int:
        """The network's parameter count, computed without building it (``build_network`` has as many)."""
        features = self.conv_filters[-1] * self.feature_side**2
        dense = 0
        if self.hidden_units:
            dense += features * self.hidden_units + self.hidden_units
            features = self.hidden_units
        return self._conv_parameters + dense + features * 10 + 10

    @property
    def activation_values(self) -> int:
        """About how many values one training batch keeps for the backward pass: each conv layer's output, again
        after batch norm, after ReLU and pooled, and the dense layers' outputs, for every image of the batch (an
        upper estimate: torch keeps 80-90% of it for the presets)."""
        per_image = IMAGE_SIDE**2
        for filters, (conv, pooled) in zip(self.conv_filters, self._conv_sides(), strict=True):
            per_image += filters * (conv**2 * (3 if self.batch_norm else 2) + pooled**2)
        per_image += 2 * self.hidden_units + 10
        return self.batch_size * per_image

    @property
    def total_batches(self) -> int:
        if self.epochs is not None:
            return math.ceil(self.epochs * self.train_images / self.batch_size)
        return self.train_batches

    @property
    def train_images(self) -> int:
        """The training images that are trained on: the 60,000 less the holdout."""
        return TRAIN_SIZE - self.holdout

    def resolved(self) -> "TrainingConfig":
        """The config a job runs with: a missing seed is drawn now, so every run can be repeated."""
        if self.seed is not None:
            return self
        return self.model_copy(update={"seed": secrets.randbelow(2**32)})


def _refuse(field: str, value: Any, kind: str, message: str, **context: Any) -> None:
    """Fail validation at ``field`` (a model-level check would otherwise be reported at the body as a whole)."""
    error = PydanticCustomError(kind, message.format(**context), context)
    raise ValidationError.from_exception_data(
        TrainingConfig.__name__, [InitErrorDetails(type=error, loc=(field,), input=value)]
    )
