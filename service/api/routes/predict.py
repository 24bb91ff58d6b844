"""Prediction: pictures or pixel grids in, digits and their probabilities out.

One endpoint takes both multipart uploads and JSON, so it reads the body itself (by its content type) and
describes both forms in the OpenAPI schema by hand.
"""

import base64
import functools
import itertools
from contextlib import aclosing
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response
from PIL import Image
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.api.bodies import inline_refs, max_json_values, parse_json, read_json_body, validation_error
from service.api.limits import allow_body
from service.api.prometheus import count_predictions
from service.domain.mnist import IMAGE_SIDE
from service.domain.model_store import MODEL_ID_PATTERN
from service.schemas.errors import ErrorResponse
from service.schemas.predictions import BatchInput, ImageInput, PixelsInput, Prediction, Predictions, PredictRequest
from service.serving.images import (
    DecodingBudget,
    ImageError,
    decoding_bytes,
    input_to_png,
    load_image,
    mnist_to_input,
    open_image,
    pixels_to_array,
    to_mnist,
)
from service.serving.inference import Batcher, ModelCache
from service.settings import Settings

router = APIRouter(tags=["predict"])

_REQUEST = TypeAdapter(PredictRequest)
# What a body holds, per image: where it is (for error messages; "" when the body is the image), and a
# picture's bytes or a pixel grid.
Inputs = list[tuple[str, bytes | PixelsInput]]


_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,  # another part is refused (422)
                "properties": {
                    "file": {
                        "type": "array",
                        "minItems": 1,
                        # A file: a part with a filename (a part without one is a text field, refused).
                        "items": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"},
                        "description": "One or more pictures (PNG, JPEG, GIF, BMP, WebP, TIFF), each a `file` part; "
                        "at most `MNIST_MAX_BATCH` (256).",
                    }
                },
            }
        },
        "application/json": {"schema": inline_refs(_REQUEST.json_schema())},
    },
}
_ERRORS = {
    404: {"model": ErrorResponse, "description": "No model with that id."},
    409: {"model": ErrorResponse, "description": "No model has been trained yet."},
    413: {
        "model": ErrorResponse,
        "description": "The body is over `MNIST_MAX_BODY_BYTES`, or is JSON with more values than "
        "`MNIST_MAX_BATCH` images need; a picture is over `MNIST_MAX_IMAGE_PIXELS`, or the pictures over "
        "`MNIST_MAX_REQUEST_PIXELS` together.",
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
    model_id: Annotated[str | None, Query(pattern=MODEL_ID_PATTERN, description="Default: the default model.")] = None,
    return_image: Annotated[
        bool, Query(description="Add to each prediction the 28x28 `image` the model saw, as a PNG data: URL.")
    ] = False,
) -> Response:
    """Classify digits: pictures as multipart `file` parts, or JSON with `pixels` (an MNIST-like grid, used as
    sent), `image` (a picture in base64) or `instances` (a list of those). The answer has one prediction per
    image, in order, even for a single one; with `?return_image=true`, each with the image the model classified,
    so that a misreading can be understood."""
    # The app's objects, taken from its state rather than as dependencies: FastAPI's resolution of each costs
    # about as much as reading a small request's body.
    state = request.app.state
    settings: Settings = state.settings
    models: ModelCache = state.models
    batcher: Batcher = state.batcher
    allow_body(request, settings.max_body_bytes)  # pictures, in multipart or in base64 in JSON
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    grid = None  # one valid pixel grid, read on the event loop
    if media_type == "multipart/form-data":
        inputs = await _read_multipart(request, settings.max_batch)
    elif media_type == "application/json" or media_type.endswith("+json"):
        body = await read_json_body(request, max_json_values(settings.max_batch), settings.max_batch)
        if len(body) <= _SMALL_BODY:  # a few kB: parsed here in microseconds, cheaper than a thread's hand-off
            document = parse_json(body)
            grid = one_pixel_grid(document)
            if grid is None:
                inputs = _read_json(document, settings.max_batch)
        else:  # up to MNIST_MAX_BODY_BYTES of base64: milliseconds, in a worker thread
            inputs = await run_in_threadpool(_parse_and_read_json, body, settings.max_batch)
    else:
        raise HTTPException(
            415,
            "send pictures as multipart/form-data `file` parts, or JSON (application/json); "
            f"got {media_type or 'no content type'}",
        )
    # A missing model is the first thing to say. Its network, when loaded and still the one to serve, is known
    # without a thread; else the store is read (and the network loaded) in one.
    known = models.loaded(model_id)
    if known is None and model_id is None:  # resolving the default loads its network anyway
        known = await run_in_threadpool(models.resolve_and_load, None)
    if known is None:
        model_id = await run_in_threadpool(models.resolve, model_id)
    else:
        model_id, network = known
    # Decoding is CPU work: worker threads do it, the event loop keeps serving.
    images = grid[np.newaxis] if grid is not None else await _network_inputs(inputs, settings)
    if known is None:
        network = await run_in_threadpool(models.network, model_id)
    # The forward pass, for the images of every request waiting, at once (see Batcher).
    probabilities = await batcher.classify_async(network, images)
    count_predictions(model_id, len(images))
    seen = await run_in_threadpool(_data_urls, images) if return_image else None
    return _answer(model_id, probabilities, seen)


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


# A JSON body up to this size is parsed on the event loop: one image as pixels takes 2 to 16 kB.
_SMALL_BODY = 32 * 1024


def _parse_and_read_json(body: bytes, max_batch: int) -> Inputs:
    return _read_json(parse_json(body), max_batch)


def _read_json(document: Any, max_batch: int) -> Inputs:
    try:
        parsed = _REQUEST.validate_python(document)
    except ValidationError as error:
        raise validation_error(error) from None
    if not isinstance(parsed, BatchInput):
        return [("", _content(parsed))]
    if len(parsed.instances) > max_batch:
        raise HTTPException(422, f"instances: at most {max_batch} per request; got {len(parsed.instances)}")
    return [(f"instances[{index}]: ", _content(instance)) for index, instance in enumerate(parsed.instances)]


def _content(instance: PixelsInput | ImageInput) -> bytes | PixelsInput:
    return instance.image if isinstance(instance, ImageInput) else instance


async def _network_inputs(inputs: Inputs, settings: Settings) -> np.ndarray:
    """The network's input for each image. Pictures are opened first (their headers): over
    MNIST_MAX_IMAGE_PIXELS each or MNIST_MAX_REQUEST_PIXELS together, they are refused before any is decoded;
    then they are decoded one at a time, once the process's decoding budget has room for the costliest."""
    opened = await run_in_threadpool(_open_pictures, inputs, settings.max_image_pixels, settings.max_request_pixels)
    costs = [decoding_bytes(content) for _, content in opened if isinstance(content, Image.Image)]
    if not costs:  # pixel grids only: nothing to decode
        return await run_in_threadpool(_decode, opened, settings.max_image_pixels)
    async with _decoding_budget(settings.max_decoding_bytes).reserve(max(costs)):
        return await run_in_threadpool(_decode, opened, settings.max_image_pixels)


@functools.cache
def _decoding_budget(max_bytes: int) -> DecodingBudget:
    return DecodingBudget(max_bytes)  # one for the process


Opened = list[tuple[str, Image.Image | PixelsInput]]


def _open_pictures(inputs: Inputs, max_pixels: int, max_request_pixels: int) -> Opened:
    opened = [
        (where, _image_errors(where, open_image, content, max_pixels) if isinstance(content, bytes) else content)
        for where, content in inputs
    ]
    pixels = sum(content.width * content.height for _, content in opened if isinstance(content, Image.Image))
    if pixels > max_request_pixels:
        raise HTTPException(
            413,
            f"the pictures hold {pixels} pixels together (as they are decoded); "
            f"the limit for one request is {max_request_pixels}",
        )
    return opened


def _decode(opened: Opened, max_pixels: int) -> np.ndarray:
    """A picture is made MNIST-like (cropped, scaled, centred); a pixel grid is used as sent."""
    return np.stack(
        [
            _image_errors(where, pixels_to_array, content.pixels, content.scale)
            if isinstance(content, PixelsInput)
            else _image_errors(where, _picture_input, content, max_pixels)
            for where, content in opened
        ]
    )


def _picture_input(image: Image.Image, max_pixels: int) -> np.ndarray:
    try:
        return mnist_to_input(to_mnist(load_image(image, max_pixels)))
    finally:
        image.close()  # its pixels, at once: the next picture may be as large


def _image_errors(where: str, function, *args):
    """`function(*args)`, its `ImageError` an HTTP error whose message says which image it is about."""
    try:
        return function(*args)
    except ImageError as error:
        raise HTTPException(error.status_code, f"{where}{error}") from None


def _data_urls(images: np.ndarray) -> list[str]:
    return [f"data:image/png;base64,{base64.b64encode(input_to_png(image)).decode()}" for image in images]


def _answer(model_id: str, probabilities: np.ndarray, images: list[str] | None = None) -> Response:
    """The answer as JSON, serialised by pydantic here: returned as a model, it would be validated once more
    against `response_model` (which stays, for the OpenAPI schema) before the same serialisation. Without
    `images`, a prediction has no `image` key at all: the answer is what it was before the option existed."""
    predictions = []
    for index, row in enumerate(probabilities.tolist()):  # Python floats: cheaper than numpy's reductions over 10
        confidence = max(row)
        prediction = Prediction(digit=row.index(confidence), confidence=confidence, probabilities=row)
        if images is not None:
            prediction.image = images[index]
        predictions.append(prediction)
    answer = Predictions(model_id=model_id, predictions=predictions)
    return Response(answer.model_dump_json(exclude_unset=True), media_type="application/json")


_PIXEL_TYPES = frozenset((int, float))


def one_pixel_grid(document: Any) -> np.ndarray | None:
    """The network's input, float32 (28, 28), for a parsed body of one valid pixel grid (`{"pixels": [...]}`,
    optionally with `"scale"`), in tens of microseconds: numpy converts the 784 values at once. None for
    anything else, which `_read_json` and `pixels_to_array` then read value by value, and explain if need be.
    The array is the one `pixels_to_array` makes of the same grid."""
    if type(document) is not dict or not 0 < len(document) <= 2 or not document.keys() <= {"pixels", "scale"}:
        return None
    pixels, scale = document.get("pixels"), document.get("scale", "255")
    if type(pixels) is not list or scale not in ("255", "1") or type(scale) is not str:
        return None
    side = IMAGE_SIDE
    if len(pixels) == side:  # 28 rows of 28
        if not all(type(row) is list and len(row) == side for row in pixels):
            return None
        values = list(itertools.chain.from_iterable(pixels))
    elif len(pixels) == side * side:
        values = pixels
    else:
        return None
    if not set(map(type, values)) <= _PIXEL_TYPES:  # no bool, string, null, list or object among them
        return None
    try:
        array = np.array(values, dtype=np.float64).reshape(side, side)
    except OverflowError:  # an integer too large for a float: `pixels_to_array` says so
        return None
    top = 255.0 if scale == "255" else 1.0
    if not (np.isfinite(array) & (array >= 0) & (array <= top)).all():
        return None
    return (array / top).astype(np.float32)
