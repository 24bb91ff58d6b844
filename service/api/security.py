"""The optional API key (``MNIST_API_KEY``): when set, every route but health and metrics requires it.

Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the dashboard, whose EventSource
cannot send headers, keeps it in a same-site cookie. Keys are compared in constant time.
"""

import hmac
from urllib.parse import unquote

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.api.deps import SettingsDep

COOKIE = "mnist_api_key"
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The service's API key.")
_bearer = HTTPBearer(auto_error=False, description="The service's API key as a bearer token.")


def require_api_key(
    request: Request,
    settings: SettingsDep,
    header_key: str | None = Security(_header),
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
) -> None:
    if settings.api_key is None:
        return
    given = header_key or (bearer.credentials if bearer else None) or unquote(request.cookies.get(COOKIE, ""))
    if not hmac.compare_digest(given.encode(), settings.api_key.get_secret_value().encode()):
        raise HTTPException(
            401,
            "missing or wrong API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
