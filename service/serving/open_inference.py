"""The Open Inference Protocol v2 (KServe, Triton) as this service speaks it: its JSON shapes, and the
conversion of its tensors to and from the network's. No HTTP here (that is ``service.api.routes.v2``).

One model, ``mnist``, whose versions are the model store's ids; without a version the default model answers.
Its input ``image`` is FP32 in 0..1 or UINT8 in 0..255, shaped ``[N, 1, 28, 28]`` or ``[N, 784]``; its outputs
are ``probabilities`` (FP32 ``[N, 10]``) and ``digit`` (INT64 ``[N]``). Tensors travel as JSON ``data``, row by
row, flat or nested; the binary tensor extension is not spoken.

Spec: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from service.domain.mnist import IMAGE_SIDE

MODEL_NAME = "mnist"
INPUT_NAME = "image"
INPUT_SHAPES = ([-1, 1, IMAGE_SIDE, IMAGE_SIDE], [-1, IMAGE_SIDE * IMAGE_SIDE])
# Each input datatype, with the range of its values and what divides them into the network's 0..1.
INPUT_DATATYPES = {"FP32": (1, 1.0), "UINT8": (255, 255.0)}


class ProtocolError(ValueError):
    """A request that the protocol refuses with 400: a bad shape, datatype, value or output name."""


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size (the batch).")


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str] = Field(description="The model ids that /versions/{version} accepts; newest first.")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerReadiness(BaseModel):
    ready: bool


class ServerLiveness(BaseModel):
    live: bool


class ModelReadiness(BaseModel):
    name: str
    ready: bool


class InputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] = Field(description="The values in row-major order, flat or nested.")


class RequestedOutput(BaseModel):
    name: Literal["probabilities", "digit"]
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InputTensor] = Field(min_length=1, max_length=1, description=f"One tensor, `{INPUT_NAME}`.")
    outputs: list[RequestedOutput] | None = Field(None, description="Default: every output.")


class OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float] | list[int]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str = Field(description="The id of the model that answered.")
    id: str | None = None
    outputs: list[OutputTensor]


class ProtocolErrorResponse(BaseModel):
    error: str


def model_metadata(versions: list[str]) -> ModelMetadataResponse:
    # The metadata can show one input form; `INPUT_SHAPES` and `INPUT_DATATYPES` list all that are accepted.
    return ModelMetadataResponse(
        name=MODEL_NAME,
        versions=versions,
        platform="pytorch",
        inputs=[TensorMetadata(name=INPUT_NAME, datatype="FP32", shape=INPUT_SHAPES[0])],
        outputs=[
            TensorMetadata(name="probabilities", datatype="FP32", shape=[-1, 10]),
            TensorMetadata(name="digit", datatype="INT64", shape=[-1]),
        ],
    )


def network_input(request: InferenceRequest, max_batch: int) -> np.ndarray:
    """The request's images as the network takes them: float32 (N, 28, 28) in 0..1."""
    tensor = request.inputs[0]
    if tensor.name != INPUT_NAME:
        raise ProtocolError(f"unknown input {tensor.name!r}: the model's input is {INPUT_NAME!r}")
    if tensor.datatype not in INPUT_DATATYPES:
        raise ProtocolError(
            f"input {INPUT_NAME!r}: datatype {tensor.datatype} is not accepted; send {' or '.join(INPUT_DATATYPES)}"
        )
    if not any(_fits(tensor.shape, shape) for shape in INPUT_SHAPES):
        raise ProtocolError(
            f"input {INPUT_NAME!r}: shape {tensor.shape} is not accepted; send "
            + " or ".join(str(shape).replace("-1", "N") for shape in INPUT_SHAPES)
        )
    count = tensor.shape[0]
    if not 1 <= count <= max_batch:
        raise ProtocolError(f"input {INPUT_NAME!r}: N must be 1 to {max_batch}; got {count}")
    try:
        values = np.asarray(tensor.data, dtype=np.float64).ravel()
    except (ValueError, TypeError):  # ragged nesting, strings, nulls
        raise ProtocolError(f"input {INPUT_NAME!r}: data must be numbers, row-major, flat or nested") from None
    except OverflowError:  # JSON integers have no bound; the largest float64 is about 1.8e308
        top = INPUT_DATATYPES[tensor.datatype][0]
        raise ProtocolError(
            f"input {INPUT_NAME!r}: data holds an integer too large to be a number (over 1e308); "
            f"{tensor.datatype} values must be within 0..{top}"
        ) from None
    if values.size != np.prod(tensor.shape):
        raise ProtocolError(
            f"input {INPUT_NAME!r}: shape {tensor.shape} holds {np.prod(tensor.shape)} values; data has {values.size}"
        )
    top, divisor = INPUT_DATATYPES[tensor.datatype]
    bad = ~np.isfinite(values) | (values < 0) | (values > top)
    if tensor.datatype == "UINT8":
        bad |= values != np.round(values)
    if bad.any():
        index = int(np.argmax(bad))
        kind = "integers" if tensor.datatype == "UINT8" else "values"
        raise ProtocolError(
            f"input {INPUT_NAME!r}: {tensor.datatype} {kind} must be within 0..{top}; "
            f"found {values[index]:g} at index {index}"
        )
    return (values / divisor).astype(np.float32).reshape(count, IMAGE_SIDE, IMAGE_SIDE)


def outputs(request: InferenceRequest, probabilities: np.ndarray) -> list[OutputTensor]:
    """The outputs asked for (all by default), in the order asked, from the network's (N, 10) probabilities."""
    every = {
        "probabilities": OutputTensor(
            name="probabilities", datatype="FP32", shape=list(probabilities.shape), data=probabilities.ravel().tolist()
        ),
        "digit": OutputTensor(
            name="digit", datatype="INT64", shape=[len(probabilities)], data=probabilities.argmax(axis=1).tolist()
        ),
    }
    return [every[output.name] for output in request.outputs] if request.outputs else list(every.values())


def _fits(shape: list[int], accepted: list[int]) -> bool:
    return len(shape) == len(accepted) and all(want in (-1, got) for got, want in zip(shape, accepted, strict=True))
