"""The Gradio studio, mounted at "/" beside the REST API: a client of the job service that never
trains in the web process (every page polls the service, so nothing depends on an open tab)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import gradio as gr

from app.auth import gradio_auth

from .studio import CSS, build_studio

# Gradio's footer links: the API page (gradio_client recipes for these handlers) applies; "built with
# Gradio", its settings page and the browser-side run history do not.
FOOTER_LINKS: list[Literal["api", "gradio", "settings", "runs"] | dict[str, str]] = ["api"]


# An upload is a prompt file for the Launch page (10k prompts fit in a few MB): Gradio refuses bigger ones.
MAX_UPLOAD = "16mb"


def served_paths(settings: Any) -> list[str]:
    """Where Gradio may copy page files from (sample and comparison images, adapter zips): the run
    directories. What the file route then actually serves is narrowed by app.file_guard."""
    return [str(Path(settings.artifacts_dir).resolve())]


def blocked_paths(settings: Any) -> list[str]:
    """Never served, whatever else allows them (Gradio checks these first): the store and the broker."""
    data = Path(settings.data_dir).resolve()
    return [str(data / name) for name in ("adrpo.db", "adrpo.db-wal", "adrpo.db-shm", "broker")]


def mount_studio(fastapi_app: Any, service: Any, settings: Any, path: str = "/") -> Any:
    """Mount the studio on ``fastapi_app`` at ``path`` (after the API routes, which keep precedence)."""
    from app.file_guard import install_file_guard

    studio = build_studio(service)
    install_file_guard(fastapi_app, Path(settings.artifacts_dir))
    return gr.mount_gradio_app(
        fastapi_app,
        studio,
        path=path,
        auth=gradio_auth(settings),  # the API's credentials (one definition, in app.auth)
        auth_message="ADRPO Studio: sign in with the same user and password as the API.",
        allowed_paths=served_paths(settings),
        blocked_paths=blocked_paths(settings),
        max_file_size=MAX_UPLOAD,
        footer_links=FOOTER_LINKS,
        run_history=False,
        show_error=True,
        css=CSS,
        theme=gr.themes.Soft(),
    )


__all__ = ["build_studio", "mount_studio"]
