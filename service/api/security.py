"""The optional API key (``MNIST_API_KEY``): when set, every route but health and metrics requires it.

Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the dashboard, whose EventSource
cannot send headers, keeps it in a same-site cookie. Keys are compared in constant time.

The routes that require it are those included with ``key_dependencies`` (see ``create_app``): with no key
configured there are none, so the OpenAPI document declares no security scheme that the API does not enforce. The
probes, ``/metrics``, the v2 server metadata and health, the dashboard's page and files, and the
documentation are open, and none of them takes a body. FastAPI resolves a route's dependencies only after it has
read and parsed the body, so ``ApiKeyGate`` guards bodies themselves: a request that carries one must carry the
key too, or not a byte of its body is read.
"""

import hmac
from urllib.parse import unquote

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.limits import has_body
from service.settings import Settings

COOKIE = "mnist_api_key"
REFUSAL = "missing or wrong API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The service's API key.")
_bearer = HTTPBearer(auto_error=False, description="The service's API key as a bearer token.")


def carries_key(connection: HTTPConnection, key: SecretStr) -> bool:
    """Whether the request carries `key`: in X-API-Key, as a bearer token, or in the dashboard's cookie."""
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    given = (
        connection.headers.get("x-api-key")
        or (credentials if scheme.lower() == "bearer" else "")
        or unquote(connection.cookies.get(COOKIE, ""))
    )
    return hmac.compare_digest(given.encode(), key.get_secret_value().encode())


def key_dependencies(key: SecretStr | None) -> list:
    """The dependencies of the routes that need the key: `require_api_key`, whose parameters declare the two ways
    to send it in the OpenAPI schema, when a key is configured; none when none is."""
    return [Depends(require_api_key)] if key is not None else []


async def require_api_key(
    request: Request,
    # Read by `carries_key`; declared here so that the OpenAPI schema shows both ways to send the key.
    header_key: str | None = Security(_header),
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
) -> None:
    # `async`, though it waits on nothing: a plain `def` dependency is called in a worker thread, a hand-off that
    # would cost every protected request more than the check itself. The settings are read from the app's state,
    # not as a dependency of their own: FastAPI's resolution of each costs more than the check too.
    settings: Settings = request.app.state.settings
    if not carries_key(request, settings.api_key):
        raise HTTPException(401, REFUSAL, headers=CHALLENGE)


class ApiKeyGate:
    """ASGI middleware: a request with a body and without the key has its body refused. When the route asks for
    it (FastAPI reads and parses a JSON body before it runs the route's dependencies), it gets the 401 that
    `require_api_key` gives, raised in place of the body, and answers it in its own form. Requests without a body
    pass untouched, as do reads once the response has started: a streaming response listening for the client to
    leave."""

    def __init__(self, app: ASGIApp, key: SecretStr | None) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.key is None
            or not has_body(Headers(scope=scope))
            or carries_key(HTTPConnection(scope), self.key)
        ):
            await self.app(scope, receive, send)
            return
        responding = False

        async def refusing_receive() -> Message:
            if not responding:
                raise HTTPException(401, REFUSAL, headers=CHALLENGE)
            return await receive()

        async def noting_send(message: Message) -> None:
            nonlocal responding
            responding = responding or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, refusing_receive, noting_send)
