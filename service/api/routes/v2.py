"""The Open Inference Protocol v2 (KServe / Triton REST), beside the service's own API: so that KServe's and
Triton's clients (`tritonclient.http`) and tools can ask this service for digits. The protocol's shapes and
tensors are in ``service.serving.open_inference``; the model and the forward pass are /predict's own.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

import service
from service.api.bodies import json_request_body, max_json_values, parse_json, read_json_body, validation_error
from service.api.deps import BatcherDep, ModelCacheDep, SettingsDep
from service.api.limits import allow_body
from service.api.prometheus import count_predictions
from service.domain import model_store
from service.domain.model_store import ModelNotFound
from service.serving import open_inference as protocol
from service.serving.inference import Batcher, ModelCache, NoDefaultModel
from service.serving.open_inference import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadiness,
    ProtocolError,
    ProtocolErrorResponse,
    ServerLiveness,
    ServerMetadataResponse,
    ServerReadiness,
)
from service.settings import Settings


class ProtocolErrorRoute(APIRoute):
    """Errors as the protocol writes them, `{"error": "..."}`, on these routes only: the rest of the API keeps
    FastAPI's `{"detail": ...}`. A request the schema refuses is a 400 here, as in the protocol, not a 422."""

    def get_route_handler(self) -> Callable:
        handle = super().get_route_handler()

        async def handle_with_protocol_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as error:
                return _error(400, "; ".join(_describe(problem) for problem in error.errors()))
            except ProtocolError as error:
                return _error(400, str(error))
            except (ModelNotFound, NoDefaultModel) as error:
                return _error(404, str(error))
            except HTTPException as error:  # e.g. a missing API key: its status and headers are kept
                return _error(error.status_code, str(error.detail), error.headers)

        return handle_with_protocol_errors


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


def _describe(problem: dict[str, Any]) -> str:
    where = ".".join(map(str, problem["loc"][1:])) or problem["loc"][0]
    return f"{where}: {problem['msg']}"


_ERRORS = {
    400: {"model": ProtocolErrorResponse, "description": "A request that the protocol or the schema refuses."},
    404: {"model": ProtocolErrorResponse},
    413: {
        "model": ProtocolErrorResponse,
        "description": "A body over `MNIST_MAX_TENSOR_BODY_BYTES`, or with more values than `MNIST_MAX_BATCH` images "
        "need.",
    },
    # Declared, this stands in for FastAPI's own 422, which these routes never answer (see ProtocolErrorRoute).
    "4XX": {"model": ProtocolErrorResponse, "description": "Any other refusal: e.g. 401 without the API key."},
}
# The protocol's clients send JSON bodies without a content type (tritonclient does): read them as JSON anyway.
router = APIRouter(
    prefix="/v2",
    tags=["open inference protocol v2"],
    route_class=ProtocolErrorRoute,
    strict_content_type=False,
    responses=_ERRORS,
)
# The server's metadata and health, for probes, which carry no API key (like /healthz and /readyz).
probes = APIRouter(prefix="/v2", tags=["open inference protocol v2"], route_class=ProtocolErrorRoute)

ModelName = Annotated[str, Path(description=f"`{protocol.MODEL_NAME}`, the only model.")]
ModelVersion = Annotated[
    str, Path(pattern=model_store.MODEL_ID_PATTERN, description="A model id; default: the default model.")
]


def _model_id(models: ModelCache, name: str, version: str | None) -> str:
    """The model id that `name` (and `version`, if given) names."""
    if name != protocol.MODEL_NAME:
        raise ModelNotFound(f"unknown model {name!r}: this server serves {protocol.MODEL_NAME!r}")
    return models.resolve(version)


@probes.get("", response_model=ServerMetadataResponse)
def server_metadata() -> ServerMetadataResponse:
    return ServerMetadataResponse(name="mnist-service", version=service.__version__, extensions=[])


@probes.get("/health/live", response_model=ServerLiveness)
def server_live() -> ServerLiveness:
    return ServerLiveness(live=True)


@probes.get("/health/ready", response_model=ServerReadiness, responses={503: {"model": ProtocolErrorResponse}})
def server_ready(settings: SettingsDep) -> ServerReadiness:
    """Ready to infer: the store has a default model."""
    if model_store.default_model_id(settings.model_dir) is None:
        raise HTTPException(503, model_store.no_default_reason(settings.model_dir))
    return ServerReadiness(ready=True)


@router.get("/models/{name}", response_model=ModelMetadataResponse)
def model_metadata(settings: SettingsDep, models: ModelCacheDep, name: ModelName) -> ModelMetadataResponse:
    """The model's input and output tensors, and its versions: every model id, newest first."""
    _model_id(models, name, None)
    return protocol.model_metadata(model_store.model_ids(settings.model_dir))


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadataResponse)
def model_version_metadata(models: ModelCacheDep, name: ModelName, version: ModelVersion) -> ModelMetadataResponse:
    return protocol.model_metadata([_model_id(models, name, version)])


@router.get("/models/{name}/ready", response_model=ModelReadiness)
def model_ready(models: ModelCacheDep, name: ModelName) -> ModelReadiness:
    _model_id(models, name, None)
    return ModelReadiness(name=name, ready=True)


@router.get("/models/{name}/versions/{version}/ready", response_model=ModelReadiness)
def model_version_ready(models: ModelCacheDep, name: ModelName, version: ModelVersion) -> ModelReadiness:
    _model_id(models, name, version)
    return ModelReadiness(name=name, ready=True)


# The body is read here rather than by FastAPI, which would parse it on the event loop however many values it holds.
_INFER_BODY = {"requestBody": json_request_body(InferenceRequest.model_json_schema())}


@router.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    response_model_exclude_none=True,
    openapi_extra=_INFER_BODY,
)
async def infer(
    request: Request, settings: SettingsDep, models: ModelCacheDep, batcher: BatcherDep, name: ModelName
) -> InferenceResponse:
    """Classify a batch of MNIST-like images (FP32 0..1 or UINT8 0..255, `[N, 1, 28, 28]` or `[N, 784]`)."""
    inference = await _read_inference_request(request, settings)
    return await run_in_threadpool(_infer, settings.max_batch, models, batcher, name, None, inference)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    response_model_exclude_none=True,
    openapi_extra=_INFER_BODY,
)
async def infer_version(
    request: Request,
    settings: SettingsDep,
    models: ModelCacheDep,
    batcher: BatcherDep,
    name: ModelName,
    version: ModelVersion,
) -> InferenceResponse:
    inference = await _read_inference_request(request, settings)
    return await run_in_threadpool(_infer, settings.max_batch, models, batcher, name, version, inference)


async def _read_inference_request(request: Request, settings: Settings) -> InferenceRequest:
    allow_body(request, settings.max_tensor_body_bytes)
    body = await read_json_body(request, max_json_values(settings.max_batch), settings.max_batch)
    return await run_in_threadpool(_parse_inference_request, body)


def _parse_inference_request(body: bytes) -> InferenceRequest:
    # Any content type is read as JSON: the protocol's clients send JSON without one (tritonclient does).
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        return InferenceRequest.model_validate(parse_json(body))
    except ValidationError as error:
        raise validation_error(error) from None


def _infer(
    max_batch: int, models: ModelCache, batcher: Batcher, name: str, version: str | None, request: InferenceRequest
) -> InferenceResponse:
    model_id = _model_id(models, name, version)
    images = protocol.network_input(request, max_batch)
    probabilities = batcher.classify(models.network(model_id), images)
    count_predictions(model_id, len(images))
    return InferenceResponse(
        model_name=protocol.MODEL_NAME,
        model_version=model_id,
        id=request.id,
        outputs=protocol.outputs(request, probabilities),
    )
