"""Interim studio mount (replaced by the ui branch's Gradio studio at merge)."""

from __future__ import annotations

import gradio as gr


def mount_studio(fastapi_app, service, settings):
    from app.auth import gradio_auth

    with gr.Blocks(title="ADRPO Studio") as blocks:
        gr.Markdown("ADRPO Studio: the REST API is at /api (see /docs).")
    return gr.mount_gradio_app(fastapi_app, blocks, path="/", auth=gradio_auth(settings))
