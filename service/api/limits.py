"""Request body size limits, enforced while the body arrives, so that a body is never held in memory past what its
route can need: a small JSON document (``MNIST_MAX_JSON_BODY_BYTES``) unless the route allows more.

A route that takes larger bodies (/predict's pictures, the v2 protocol's tensors) says so with ``allow_body``
before it reads its body; the limit applies from the first read, so a declared Content-Length over it is refused
before any of the body is read.
"""

from fastapi import HTTPException, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MAX_BYTES = "service.max_body_bytes"  # the limit of this request's body, in its scope


class BodyTooLarge(HTTPException):
    # An HTTPException, because FastAPI turns any other error raised while it reads a body into a 400;
    # this one it lets through to the route's or the app's handler, which answers 413 with the detail.
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is over the limit of {max_bytes} bytes")


def allow_body(request: Request, max_bytes: int) -> None:
    """Let this request's body be up to `max_bytes`: for a route that takes more than the default, before it reads
    its body."""
    request.scope[_MAX_BYTES] = max_bytes


class BodySizeLimit:
    """ASGI middleware: when the route first reads the body, a declared Content-Length over the limit is refused
    before any of the body is read; a body without one (chunked) is counted as it streams in, and stopped as soon
    as it passes the limit. Once the response has started, reads are left alone: they are a streaming response
    listening for the client to leave.

    An answer sent before the body was read to its end (refused for its size, for a missing key, for its type)
    says `Connection: close`, and uvicorn closes the connection after it, rather than leave it to a client that
    may go on sending the rest, which the server would only discard."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_MAX_BYTES] = self.max_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        received = 0
        body_read = not has_body(headers)
        responding = False

        async def counting_receive() -> Message:
            nonlocal received, body_read
            if responding:
                return await receive()
            max_bytes = scope[_MAX_BYTES]
            if declared.isdigit() and int(declared) > max_bytes:
                raise BodyTooLarge(max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
                body_read = not message.get("more_body", False)
            return message

        async def noting_send(message: Message) -> None:
            nonlocal responding
            if message["type"] == "http.response.start":
                responding = True
                if not body_read:
                    MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, counting_receive, noting_send)


def has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
