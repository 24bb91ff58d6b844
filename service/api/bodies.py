"""The JSON bodies that routes read themselves (POST /predict, the v2 protocol's infer), read within bounds.

A JSON parser holds the GIL for as long as it parses, in a worker thread or not, so a body of millions of tiny
values (8 MB of `[],` is 2.8 million lists, a second to parse) would stall every other request. So the values of
a body are counted as it arrives, with a fast scan of its bytes, and a body with more than its route can need is
refused with 413 before anything parses it; the rest is parsed by pydantic-core's parser (Rust: a few ms for the
largest legitimate body), which refuses nesting deeper than 200 and integers longer than 4300 digits.
"""

from contextlib import aclosing
from typing import Any

import pydantic_core
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError

from service.domain.mnist import IMAGE_SIDE

# What one image can take as JSON: its 784 values, and its 28 rows, the list of them, and the object holding it.
VALUES_PER_IMAGE = IMAGE_SIDE**2 + 2 * IMAGE_SIDE
_ENVELOPE_VALUES = 1024  # the rest of a request: names, shapes, parameters


def max_json_values(images: int) -> int:
    """The most JSON values a body carrying `images` images as pixel values can need."""
    return images * VALUES_PER_IMAGE + _ENVELOPE_VALUES


async def read_json_body(request: Request, max_values: int, images: int) -> bytes:
    """The body, refused with 413 as soon as it holds more than `max_values` JSON values (those of `images`
    images). Every value but the first follows a comma or opens a list or an object, so those bytes bound the
    values before any is built; inside strings they count too, an over-count that base64 pictures never make."""
    parts, values = [], 0
    async with aclosing(request.stream()) as stream:
        async for part in stream:
            values += _separators(part)
            if values > max_values:
                raise HTTPException(
                    413, f"JSON body holds over {max_values} values: more than {images} images of pixels need"
                )
            parts.append(part)
    return b"".join(parts)


def _separators(part: bytes) -> int:
    # bytes.count is a memchr-speed scan: a few microseconds for a small body, milliseconds for 8 MB, and no
    # temporary array the size of the part.
    return part.count(b",") + part.count(b"[") + part.count(b"{")


def parse_json(body: bytes) -> Any:
    """`body` parsed; not JSON: a RequestValidationError at `body`, as FastAPI's own."""
    try:
        return pydantic_core.from_json(body)
    except ValueError as error:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"Invalid JSON: {error}"}]
        ) from None


def validation_error(error: pydantic_core.ValidationError) -> RequestValidationError:
    """A body's validation errors as FastAPI reports them (at `body`), without the input: echoing megabytes of
    pixels back helps nobody."""
    errors = error.errors(include_url=False, include_input=False, include_context=False)
    return RequestValidationError([{**problem, "loc": ("body", *problem["loc"])} for problem in errors])


def json_request_body(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI `requestBody` of JSON with `schema`, for a route that reads its body itself."""
    return {"required": True, "content": {"application/json": {"schema": inline_refs(schema)}}}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
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
