"""The web process: REST API under /api and the Gradio studio at /."""

from __future__ import annotations

from fastapi import FastAPI

from worker.service import JobService
from worker.settings import Settings

from .api import install_error_handlers, make_router


def create_app(settings: Settings | None = None, service: JobService | None = None, studio: bool = True) -> FastAPI:
    settings = settings or Settings()
    service = service or JobService(settings)
    app = FastAPI(title="ADRPO Studio", version="0.1.0", description="Jobs, metrics, samples, comparisons, adapters.")
    app.state.service = service
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(make_router(service, settings))
    if studio:
        from app.ui import mount_studio

        app = mount_studio(app, service, settings) or app
    return app
