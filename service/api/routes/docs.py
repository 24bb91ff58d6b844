"""The interactive API documentation, `/docs` (Swagger UI), working offline.

FastAPI's own page loads its script, styles and favicon from a CDN, so without internet it is blank. This is
the same page (FastAPI's `get_swagger_ui_html`), pointed at the copy of Swagger UI that the `fastapi-offline`
package ships, served under `/docs/assets/`: nothing is fetched from anywhere else. Like the dashboard, the
page and its files carry no data and need no API key.

There is no `/redoc`: ReDoc's page, even with its script served from here, fetches its footer's logo from
cdn.redoc.ly. Swagger UI and `/openapi.json` cover the same ground.
"""

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs/assets"
# swagger-ui-bundle.js, swagger-ui.css and favicon.png (and ReDoc's script, unused)
static_files = StaticFiles(directory=Path(fastapi_offline.__file__).resolve().parent / "static")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=f"{root}{app.swagger_ui_oauth2_redirect_url}",
        # No badge asking validator.swagger.io about the schema: the page talks to this server only.
        swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()
