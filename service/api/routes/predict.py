"""Prediction: pictures or pixel grids in, digits and their probabilities out.

One endpoint takes both multipart uploads and JSON, so it reads the body itself (by its content type) and
describes both forms in the OpenAPI schema by hand.
"""

from contextlib import aclosing
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.api.deps import BatcherDep, ModelCacheDep, SettingsDep
from service.api.prometheus import count_predictions
from service.domain.model_store import MODEL_ID_PATTERN
from service.schemas.errors import ErrorResponse
from service.schemas.predictions import BatchInput, ImageInput, PixelsInput, Prediction, Predictions, PredictRequest
from service.serving.images import ImageError, decode_image, mnist_to_input, pixels_to_array, to_mnist
from service.serving.inference import Batcher, ModelCache

router = APIRouter(tags=["predict"])

_REQUEST = TypeAdapter(PredictRequest)
# What a body holds, per image: where it is (for error messages; "" when the body is the image), and a
# picture's bytes or a pixel grid.
Inputs = list[tuple[str, bytes | PixelsInput]]


def _inline_refs(schema: dict) -> dict:
    """`schema` with every `$ref` to its own `$defs` replaced by the definition: in an OpenAPI document
    `#/$defs/...` would be looked up from the document's root, where there is none."""
    definitions = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                target = definitions[node["$ref"].rpartition("/")[2]]
                return resolve({**target, **{key: value for key, value in node.items() if key != "$ref"}})
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                        "description": "One or more pictures (PNG, JPEG, GIF, BMP, WebP, TIFF), each a `file` part; "
                        "at most `MNIST_MAX_BATCH` (256).",
                    }
                },
            }
        },
        "application/json": {"schema": _inline_refs(_REQUEST.json_schema())},
    },
}
_ERRORS = {
    404: {"model": ErrorResponse, "description": "No model with that id."},
    409: {"model": ErrorResponse, "description": "No model has been trained yet."},
    413: {
        "model": ErrorResponse,
        "description": "The body is over `MNIST_MAX_BODY_BYTES`, or a picture over `MNIST_MAX_IMAGE_PIXELS`.",
    },
    415: {
        "model": ErrorResponse,
        "description": "Neither multipart nor JSON; or a file that is not a picture (or is truncated).",
    },
    422: {
        "model": ErrorResponse,
        "description": "A body that does not fit the schema, bad pixels, a picture "
        "without a digit, no `file` part, or more than `MNIST_MAX_BATCH` images.",
    },
}


@router.post("/predict", response_model=Predictions, responses=_ERRORS, openapi_extra={"requestBody": _REQUEST_BODY})
async def predict(
    request: Request,
    settings: SettingsDep,
    models: ModelCacheDep,
    batcher: BatcherDep,
    model_id: Annotated[str | None, Query(pattern=MODEL_ID_PATTERN, description="Default: the default model.")] = None,
) -> Predictions:
    """Classify digits: pictures as multipart `file` parts, or JSON with `pixels` (an MNIST-like grid, used as
    sent), `image` (a picture in base64) or `instances` (a list of those). The answer has one prediction per
    image, in order, even for a single one."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        inputs = await _read_multipart(request, settings.max_batch)
    elif media_type == "application/json" or media_type.endswith("+json"):
        body = await request.body()
        inputs = await run_in_threadpool(_read_json, body, settings.max_batch)  # 8 MB of JSON takes a while
    else:
        raise HTTPException(
            415,
            "send pictures as multipart/form-data `file` parts, or JSON (application/json); "
            f"got {media_type or 'no content type'}",
        )
    # Decoding and the forward pass are CPU work: a worker thread does it, the event loop keeps serving.
    return await run_in_threadpool(_predict, models, batcher, model_id, inputs, settings.max_image_pixels)


async def _read_multipart(request: Request, max_batch: int) -> Inputs:
    async with aclosing(request.stream()) as stream:
        try:
            form = await MultiPartParser(request.headers, stream, max_files=max_batch).parse()
        except MultiPartException as error:  # malformed, or too many files
            raise HTTPException(422, f"multipart body: {error.message}") from None
    try:
        unexpected = sorted(set(form.keys()) - {"file"})
        if unexpected:
            raise HTTPException(422, f"unexpected part {unexpected[0]!r}: send pictures as `file` parts")
        uploads = form.getlist("file")
        if not uploads:
            raise HTTPException(422, "no `file` part: send pictures as `file` parts (curl -F file=@digit.png)")
        inputs = []
        for index, upload in enumerate(uploads):
            label = f"file[{index}]" if len(uploads) > 1 else "file"
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, f"{label}: is a text field, not a file (curl -F file=@digit.png)")
            inputs.append((f"{label} {upload.filename!r}: ", await upload.read()))
        return inputs
    finally:
        await form.close()


def _read_json(body: bytes, max_batch: int) -> Inputs:
    try:
        parsed = _REQUEST.validate_json(body)
    except ValidationError as error:
        # The input is left out: echoing an 8 MB picture back helps nobody.
        errors = error.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    if not isinstance(parsed, BatchInput):
        return [("", _content(parsed))]
    if len(parsed.instances) > max_batch:
        raise HTTPException(422, f"instances: at most {max_batch} per request; got {len(parsed.instances)}")
    return [(f"instances[{index}]: ", _content(instance)) for index, instance in enumerate(parsed.instances)]


def _content(instance: PixelsInput | ImageInput) -> bytes | PixelsInput:
    return instance.image if isinstance(instance, ImageInput) else instance


def _predict(
    models: ModelCache, batcher: Batcher, model_id: str | None, inputs: Inputs, max_pixels: int
) -> Predictions:
    model_id = models.resolve(model_id)  # before the decoding: a missing model is the first thing to say
    images = np.stack([_network_input(where, content, max_pixels) for where, content in inputs])
    probabilities = batcher.classify(models.network(model_id), images)
    count_predictions(model_id, len(images))
    return Predictions(
        model_id=model_id,
        predictions=[
            Prediction(digit=int(p.argmax()), confidence=float(p.max()), probabilities=p.tolist())
            for p in probabilities
        ],
    )


def _network_input(where: str, content: bytes | PixelsInput, max_pixels: int) -> np.ndarray:
    """A picture is made MNIST-like (cropped, scaled, centred); a pixel grid is used as sent."""
    try:
        if isinstance(content, PixelsInput):
            return pixels_to_array(content.pixels, content.scale)
        return mnist_to_input(to_mnist(decode_image(content, max_pixels)))
    except ImageError as error:
        raise HTTPException(error.status_code, f"{where}{error}") from None
