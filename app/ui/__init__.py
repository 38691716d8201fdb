"""The Gradio studio, mounted at "/" beside the REST API: a client of the job service that never
trains in the web process (every page polls the service, so nothing depends on an open tab)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from app.auth import gradio_auth

from .studio import CSS, build_studio

# Gradio's footer links: the API page (gradio_client recipes for these handlers) applies; "built with
# Gradio", its settings page and the browser-side run history do not.
FOOTER_LINKS = ["api"]


def served_paths(settings: Any) -> list[str]:
    """Folders whose files (sample images, comparison images, adapter zips) the studio may serve."""
    folders = [getattr(settings, name, None) for name in ("artifacts_dir", "data_dir")]
    return [str(Path(folder).resolve()) for folder in folders if folder]


def mount_studio(fastapi_app: Any, service: Any, settings: Any, path: str = "/") -> Any:
    """Mount the studio on ``fastapi_app`` at ``path`` (after the API routes, which keep precedence)."""
    studio = build_studio(service)
    return gr.mount_gradio_app(
        fastapi_app,
        studio,
        path=path,
        auth=gradio_auth(settings),  # the API's credentials (one definition, in app.auth)
        auth_message="ADRPO Studio: sign in with the same user and password as the API.",
        allowed_paths=served_paths(settings),
        footer_links=FOOTER_LINKS,
        run_history=False,
        show_error=True,
        css=CSS,
        theme=gr.themes.Soft(),
    )


__all__ = ["build_studio", "mount_studio"]
