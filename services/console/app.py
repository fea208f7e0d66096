"""The ASGI application of `wfctl serve`: the API, the console pages, health and metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import api, web
from services.console.auth import AuthError, SessionSigner
from services.console.guard import RequestGuard
from services.console.state import ApiJSON, ConsoleState, error_body, state_of
from services.core.errors import ConfigError, ConflictError, NotFoundError, UserError
from services.core.settings import ConsoleSettings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("static")
#: What the API docs page loads from the Swagger UI package.
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


#: Fields the shared service functions name as wfctl's options, named as the API's JSON keys.
API_FIELD_NAMES = {"jitter": "jitter_seconds", "catchup-window": "catchup_window_seconds", "from-step": "from_step"}


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path != "/metrics"


def _field_of(error: dict[str, Any]) -> str:
    parts = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def create_app(settings: ConsoleSettings, database_url: str) -> FastAPI:
    app = FastAPI(
        title="Workflow Runtime API",
        version="1",
        description="The operator API of Workflow Runtime (docs/console.md). Authenticate with "
        "`Authorization: Bearer <token>` (`wfctl tokens create NAME --role R`).",
        # Served by the routes below, behind authentication like everything else.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    # Swagger UI 4 (the vendored one) renders 3.0 documents; the schema uses nothing newer.
    app.openapi_version = "3.0.3"
    app.state.console = ConsoleState(
        settings=settings, database_url=database_url, signer=SessionSigner(settings.secret_key)
    )

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, error: AuthError) -> Response:
        if _wants_html(request):
            if error.status_code == 401:
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            return web.error_page(request, error.status_code, error.message)
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        return ApiJSON(error_body(None, error.message), status_code=error.status_code, headers=headers)

    @app.exception_handler(UserError)
    async def user_error(request: Request, error: UserError) -> Response:
        status = 404 if isinstance(error, NotFoundError) else 409 if isinstance(error, ConflictError) else 400
        if _wants_html(request):
            return web.error_page(request, status, f"{error.field}: {error.message}")
        field = API_FIELD_NAMES.get(error.field, error.field)
        return ApiJSON(error_body(field, error.message.replace("--from", "from")), status_code=status)

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, error: ConfigError) -> Response:
        if _wants_html(request):
            return web.error_page(request, 503, str(error))
        return ApiJSON(error_body(None, str(error)), status_code=503)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        field = "body" if first.get("type") == "json_invalid" else _field_of(first)
        message = str(first.get("msg", "invalid"))
        if _wants_html(request):
            return web.error_page(request, 400, f"{field}: {message}")
        return ApiJSON(error_body(field, message), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if _wants_html(request):
            return web.error_page(request, error.status_code, str(error.detail))
        return ApiJSON(error_body(None, str(error.detail)), status_code=error.status_code)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        """The process answers (liveness): no database access, so a database outage never
        restarts every replica."""
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> PlainTextResponse:
        """A database round trip (readiness)."""
        try:
            with state_of(request).db() as session:
                session.execute(text("SELECT 1"))
        except Exception as error:  # any failure means "not ready", with a one-line reason
            log.warning("readiness check failed: %s", type(error).__name__)
            return PlainTextResponse(f"database unavailable: {type(error).__name__}\n", status_code=503)
        return PlainTextResponse("ok\n")

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        from services.console.metrics import render_metrics

        console = state_of(request)
        api.request_principal(request)
        with console.db() as session:
            body = render_metrics(session)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi_document(request: Request) -> Response:
        api.request_principal(request)
        return ApiJSON(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        api.request_principal(request)
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="Workflow Runtime API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.add_middleware(RequestGuard)  # outermost: before any route, body parsing or authentication
    app.include_router(api.router)
    app.include_router(web.router)
    @app.get("/static/swagger/{name}", include_in_schema=False)
    def swagger_file(name: str, request: Request) -> Response:
        """The API docs' files, behind authentication like the docs page (the sign-in page needs
        only the console's own CSS and script, which stay public)."""
        api.request_principal(request)
        if name not in SWAGGER_FILES:
            raise StarletteHTTPException(404, "Not Found")
        return FileResponse(Path(_swagger_dir()) / name, headers={"Cache-Control": "private, max-age=3600"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _swagger_dir() -> str:
    """Swagger UI's files from the `swagger-ui-bundle` package: no CDN."""
    from swagger_ui_bundle import swagger_ui_path

    return str(swagger_ui_path)
