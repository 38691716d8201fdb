"""Jobs tab: every job with status, progress, ETA and latest reward, refreshed by polling the
service; cancel, resume and clone act on the selected job. The list lives in the service's database,
so a reloaded page (or another browser) shows the same jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from .common import EMPTY_JOBS, POLL_SECONDS, format_eta, format_progress, format_reward, format_time, job_choices

COLUMNS = ["name", "status", "progress", "ETA", "latest reward", "created", "id"]


@dataclass
class JobsTab:
    empty: gr.Markdown
    table: gr.Dataframe
    job: gr.Dropdown
    open: gr.Button
    cancel: gr.Button
    resume: gr.Button
    clone: gr.Button
    copy_to_launch: gr.Button
    message: gr.Markdown
    timer: gr.Timer


def jobs_frame(jobs: list[Any]) -> pd.DataFrame:
    """The table's rows, newest first (the service's order)."""
    rows = [
        (
            job.name,
            job.status,
            format_progress(job),
            format_eta(job),
            format_reward(job.latest_reward),
            format_time(job.created_at),
            job.id,
        )
        for job in jobs
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def build_jobs_tab() -> JobsTab:
    empty = gr.Markdown(EMPTY_JOBS, visible=True, elem_id="jobs-empty")
    table = gr.Dataframe(
        pd.DataFrame(columns=COLUMNS),
        interactive=False,
        wrap=True,
        label="Jobs (newest first)",
        elem_id="jobs-table",
        visible=False,
    )
    with gr.Row():
        job = gr.Dropdown(
            [], label="Selected job (or click a row)", elem_id="jobs-job", scale=3, allow_custom_value=True
        )
        open_button = gr.Button("Open", variant="primary", elem_id="jobs-open", scale=1)
        cancel = gr.Button("Cancel", variant="stop", elem_id="jobs-cancel", scale=1)
        resume = gr.Button("Resume", elem_id="jobs-resume", scale=1)
        clone = gr.Button("Clone", elem_id="jobs-clone", scale=1)
        copy_to_launch = gr.Button("Edit in Launch", elem_id="jobs-copy", scale=1)
    gr.Markdown(
        "*Clone* starts a new job with the same config; *Edit in Launch* copies the config into the "
        "form to change it first. *Resume* continues a cancelled or failed job from its last checkpoint."
    )
    message = gr.Markdown("", elem_id="jobs-message")
    timer = gr.Timer(POLL_SECONDS)
    return JobsTab(empty, table, job, open_button, cancel, resume, clone, copy_to_launch, message, timer)


def wire_jobs_tab(tab: JobsTab, service: Any) -> Any:
    """Wire the tab's events; returns its refresh function (the studio also calls it on page load)."""

    def refresh(selected: str | None) -> tuple[Any, Any, Any]:
        jobs = service.list_jobs()
        ids = [job.id for job in jobs]
        chosen = selected if selected in ids else (ids[0] if ids else None)
        return (
            gr.update(visible=not jobs),
            gr.update(value=jobs_frame(jobs), visible=bool(jobs)),
            gr.update(choices=job_choices(jobs), value=chosen),
        )

    def pick_row(event: gr.SelectData) -> Any:
        row = event.row_value or []
        return row[-1] if row else gr.skip()

    def act(action: str):
        def handler(job_id: str | None) -> tuple[str, Any]:
            if not job_id:
                return "Select a job first.", gr.skip()
            try:
                if action == "clone":
                    job = service.clone(job_id)
                    return f"Cloned into **{job.name}** `{job.id}` ({job.status}).", job.id
                job = getattr(service, action)(job_id)
            except (LookupError, ValueError, RuntimeError) as error:
                return f"**Could not {action}:** {error}", gr.skip()
            return f"**{job.name}** `{job.id}` is now {job.status}.", gr.skip()

        return handler

    outputs = [tab.empty, tab.table, tab.job]
    tab.timer.tick(refresh, inputs=tab.job, outputs=outputs, show_progress="hidden", api_name="list_jobs")
    tab.table.select(pick_row, outputs=tab.job)
    for button, action in ((tab.cancel, "cancel"), (tab.resume, "resume"), (tab.clone, "clone")):
        button.click(act(action), inputs=tab.job, outputs=[tab.message, tab.job], api_name=f"{action}_job").then(
            refresh, inputs=tab.job, outputs=outputs, show_progress="hidden"
        )
    return refresh
