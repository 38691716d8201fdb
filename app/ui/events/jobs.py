"""Jobs tab events: the table's refresh, picking a row, cancel / resume / clone of the picked job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from ..common import job_choices
from ..jobs import JobsTab, jobs_frame
from ..service import StudioService, Updates

CLONE_SUFFIX = "-clone"


def clone_name(name: str, taken: set[str]) -> str:
    """``run`` -> ``run-clone``, then ``run-clone-2``...: a clone never makes two identical rows.
    Names stay within the schema's 64 characters."""
    stem = name.split(CLONE_SUFFIX)[0][: 64 - len(CLONE_SUFFIX) - 4]
    candidate, number = f"{stem}{CLONE_SUFFIX}", 2
    while candidate in taken:
        candidate, number = f"{stem}{CLONE_SUFFIX}-{number}", number + 1
    return candidate


def action_message(action: str, job: Any) -> str:
    """What happened, in the job's own terms: a running job's cancel is a request, not a done deed."""
    if action == "cancel" and job.status == "running":
        return (
            f"Cancel requested for **{job.name}** `{job.id}`: it stops after its current step and keeps "
            "a checkpoint (Resume continues from there)."
        )
    if action == "cancel":
        return f"**{job.name}** `{job.id}` is cancelled."
    if action == "resume":
        return f"**{job.name}** `{job.id}` is queued again; it continues from its last checkpoint."
    return f"**{job.name}** `{job.id}` is now {job.status}."


def refresh_updates(tab: JobsTab, service: StudioService, selected: str | None) -> Updates:
    jobs = service.list_jobs()
    ids = [job.id for job in jobs]
    chosen = selected if selected in ids else (ids[0] if ids else None)
    return {
        tab.empty: gr.update(visible=not jobs),
        tab.table: gr.update(value=jobs_frame(jobs), visible=bool(jobs)),
        tab.job: gr.update(choices=job_choices(jobs), value=chosen),
    }


def act(service: StudioService, tab: JobsTab, action: str) -> Callable[[str | None], Updates]:
    def handler(job_id: str | None) -> Updates:
        if not job_id:
            return {tab.message: "Select a job first."}
        try:
            if action == "clone":
                source = service.get_job(job_id)
                name = clone_name(source.name, {job.name for job in service.list_jobs()})
                job = service.clone(job_id, overrides={"name": name})
                return {tab.message: f"Cloned into **{job.name}** `{job.id}` ({job.status}).", tab.job: job.id}
            job = getattr(service, action)(job_id)
        except (LookupError, ValueError, RuntimeError) as error:
            return {tab.message: f"**Could not {action}:** {error}"}
        return {tab.message: action_message(action, job)}

    return handler


def wire_jobs_tab(tab: JobsTab, service: StudioService) -> Callable[[str | None], Updates]:
    """Wire the tab's events; returns its refresh function (the studio also calls it on page load)."""
    listing = [tab.empty, tab.table, tab.job]

    def refresh(selected: str | None) -> Updates:
        return refresh_updates(tab, service, selected)

    def pick_row(event: gr.SelectData) -> Updates:
        row = event.row_value or []
        return {tab.job: row[-1]} if row else {}

    tab.timer.tick(refresh, inputs=tab.job, outputs=listing, show_progress="hidden", api_name="list_jobs")
    tab.table.select(pick_row, outputs=tab.job)
    for button, action in ((tab.cancel, "cancel"), (tab.resume, "resume"), (tab.clone, "clone")):
        button.click(
            act(service, tab, action), inputs=tab.job, outputs=[tab.message, tab.job], api_name=f"{action}_job"
        ).then(refresh, inputs=tab.job, outputs=listing, show_progress="hidden")
    return refresh
