"""Prediction: the JSON bodies of POST /predict and its answer.

The pixel grid's shape and values are checked by `service.serving.images.pixels_to_array`, which names the bad
row or value; the schema only describes them.
"""

import base64
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PlainValidator, Tag, WithJsonSchema

from service.domain.mnist import IMAGE_SIDE


def _pixel_grid_schema(top: int) -> dict:
    pixel = {"type": "number", "minimum": 0, "maximum": top}
    return {
        "oneOf": [
            {
                "title": f"{IMAGE_SIDE} rows of {IMAGE_SIDE}",
                "type": "array",
                "minItems": IMAGE_SIDE,
                "maxItems": IMAGE_SIDE,
                "items": {"type": "array", "items": pixel, "minItems": IMAGE_SIDE, "maxItems": IMAGE_SIDE},
            },
            {
                "title": f"{IMAGE_SIDE**2} values, row by row",
                "type": "array",
                "items": pixel,
                "minItems": IMAGE_SIDE**2,
                "maxItems": IMAGE_SIDE**2,
            },
        ]
    }


_SPACE = r"[\t\n\r ]*"  # line breaks are allowed: `base64` wraps its output at 76 characters
_SYMBOL = rf"(?:[A-Za-z0-9+/]{_SPACE})"
# Base64 as `base64.b64decode(validate=True)` reads it once the spaces are out: groups of four symbols, at least one,
# the last perhaps padded with one or two `=`; perhaps after a data: URL's header (what a canvas's toDataURL()
# gives: data:image/png;base64,<data>). The schema says the same, so that it admits exactly what is accepted.
BASE64_PATTERN = (
    rf"^(?:data:[^,]*,)?{_SPACE}(?:{_SYMBOL}{{4}})*"
    rf"(?:{_SYMBOL}{{4}}|{_SYMBOL}{{2}}={_SPACE}={_SPACE}|{_SYMBOL}{{3}}={_SPACE})$"
)
_BASE64 = re.compile(BASE64_PATTERN)


def _decode_base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("must be a base64 string")
    if not _BASE64.fullmatch(value):
        raise ValueError(
            "not valid base64: groups of 4 of A-Z, a-z, 0-9, + and /, the last perhaps padded with =, "
            "optionally after a data: URL's header"
        )
    return base64.b64decode(re.sub(_SPACE, "", value.partition(",")[2] if value.startswith("data:") else value))


class PixelsInput(BaseModel):
    """A digit already like MNIST's (light ink on black, centred), used as sent."""

    model_config = ConfigDict(
        extra="forbid",
        # The values' bound depends on `scale`: the schema says so, so that it admits only what is accepted.
        json_schema_extra={
            "if": {"properties": {"scale": {"const": "1"}}, "required": ["scale"]},
            "then": {"properties": {"pixels": _pixel_grid_schema(1)}},
        },
    )

    pixels: Annotated[list[Any], WithJsonSchema(_pixel_grid_schema(255))] = Field(
        description=f"{IMAGE_SIDE} rows of {IMAGE_SIDE} values, or {IMAGE_SIDE**2} values row by row."
    )
    scale: Literal["255", "1"] = Field("255", description='"255": values are 0..255; "1": values are 0..1.')


class ImageInput(BaseModel):
    """A picture of a digit (PNG, JPEG, GIF, BMP, WebP, TIFF; any size): cropped, scaled and centred as MNIST's."""

    model_config = ConfigDict(extra="forbid")

    image: Annotated[
        bytes,
        PlainValidator(_decode_base64),
        WithJsonSchema({"type": "string", "format": "byte", "contentEncoding": "base64", "pattern": BASE64_PATTERN}),
    ] = Field(description="The picture's file in base64, or a data: URL.")


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
    Discriminator(
        _input_kind, custom_error_type="missing_input", custom_error_message='give "pixels", "image" or "instances"'
    ),
]


class Prediction(BaseModel):
    digit: int = Field(ge=0, le=9, description="The most probable digit.")
    confidence: float = Field(description="Its probability.")
    probabilities: list[float] = Field(
        min_length=10, max_length=10, description="The probability of each digit, 0 to 9; they sum to 1."
    )
    image: str | None = Field(
        None,
        description="Only with `?return_image=true`: the 28x28 image the model classified (the picture cropped, "
        "scaled and centred as MNIST's, light ink on black; a pixel grid as sent), as a PNG data: URL "
        "(`data:image/png;base64,...`).",
    )


class Predictions(BaseModel):
    model_id: str = Field(description="The model that answered.")
    predictions: list[Prediction] = Field(description="One per image, in the order sent (a list even for one).")
