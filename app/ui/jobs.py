"""Jobs tab: every job with status, progress, ETA and latest reward, refreshed by polling the
service; cancel, resume and clone act on the selected job. The list lives in the service's database,
so a reloaded page (or another browser) shows the same jobs. The events are wired in
``app/ui/events/jobs.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from .common import (
    EMPTY_JOBS,
    POLL_SECONDS,
    format_algorithm,
    format_eta,
    format_progress,
    format_reward,
    format_time,
)

COLUMNS = ["name", "status", "algorithm", "progress", "ETA", "latest reward", "created", "id"]


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
            _status(job),
            format_algorithm(job),
            format_progress(job),
            format_eta(job),
            format_reward(job.latest_reward),
            format_time(job.created_at),
            job.id,
        )
        for job in jobs
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _status(job: Any) -> str:
    """ "running (building model)", "running (cancel requested)", or the plain status."""
    if job.status == "running" and getattr(job, "cancel_requested", False):
        return "running (cancel requested)"
    phase = getattr(job, "phase", None)
    return f"{job.status} ({phase})" if job.status == "running" and phase and phase != "training" else job.status


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
    timer = gr.Timer(POLL_SECONDS, active=False)  # polls only while its tab is shown (events/cross_tab.py)
    return JobsTab(empty, table, job, open_button, cancel, resume, clone, copy_to_launch, message, timer)
