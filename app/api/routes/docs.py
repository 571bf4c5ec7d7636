"""/docs and /redoc rendered with assets the app serves itself (they work offline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

SWAGGER_JS = "/static/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "/static/swagger-ui/swagger-ui.css"
SWAGGER_FAVICON = "/static/swagger-ui/favicon-32x32.png"
REDOC_JS = "/static/redoc/redoc.standalone.js"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """The Swagger UI page."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=SWAGGER_FAVICON,
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """The ReDoc page (no web fonts: nothing is fetched from the internet)."""
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=REDOC_JS,
        redoc_favicon_url=SWAGGER_FAVICON,
        with_google_fonts=False,
    )
