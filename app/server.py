"""The web process: REST API under /api and the Gradio studio at /."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from worker.service import JobService
from worker.settings import Settings

from .api import install_error_handlers, make_router
from .auth import basic_auth


def create_app(settings: Settings | None = None, service: JobService | None = None, studio: bool = True) -> FastAPI:
    settings = settings or Settings()
    service = service or JobService(settings)
    # FastAPI's own docs routes take no dependencies: turn them off and serve them behind the API's auth.
    app = FastAPI(
        title="ADRPO Studio",
        version="0.1.0",
        description="Jobs, metrics, samples, comparisons, adapters.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(make_router(service, settings))
    _add_docs_routes(app, settings)
    if studio:
        from app.ui import mount_studio

        app = mount_studio(app, service, settings) or app
    return app


def _add_docs_routes(app: FastAPI, settings: Settings) -> None:
    guard = [Depends(basic_auth(settings))]

    @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guard)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")

    @app.get("/redoc", include_in_schema=False, dependencies=guard)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} API")
