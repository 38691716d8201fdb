"""Events that join tabs: Launch opens the new job, Jobs opens or copies a job, the page load (and a
``?job=ID`` link) re-attaches to the service's jobs, and switching tabs decides which tab polls.

Only the visible tab polls the service (its ``gr.Timer`` is active, the others' are not): with a
job page open, the Jobs table's poll used to run as well, and every poll costs the web process and
the browser CPU that a small machine's training worker needs (issue 13, item 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..common import job_choices
from ..compare import CompareTab
from ..detail import DetailTab
from ..jobs import JobsTab
from ..launch import LaunchTab, values_of
from ..runs import RunsTab
from ..service import StudioService, Updates
from . import unchanged
from .detail import blank_body, body_components
from .jobs import refresh_updates
from .launch import (
    error_markdown,
    field_updates,
    form_updates_from_config,
    preview_updates,
    submit_form,
)

# Keeps the address bar on the open job, so a reload or a shared link comes back to it.
JOB_LINK_JS = """(jobId) => {
  const url = new URL(window.location.href);
  if (jobId) { url.searchParams.set("job", jobId); } else { url.searchParams.delete("job"); }
  window.history.replaceState(null, "", url);
}"""


@dataclass
class StudioTabs:
    tabs: gr.Tabs
    tab_items: dict[str, gr.Tab]
    launch: LaunchTab
    jobs: JobsTab
    detail: DetailTab
    compare: CompareTab
    runs: RunsTab


def show_tab(studio: StudioTabs, name: str) -> Updates:
    """Select tab ``name`` and let only its timer poll."""
    return {
        studio.tabs: gr.Tabs(selected=name),
        studio.jobs.timer: gr.Timer(active=name == "jobs"),
        studio.detail.timer: gr.Timer(active=name == "detail"),
    }


def pickers(studio: StudioTabs, service: StudioService, value: str | None = None) -> Updates:
    """Every job picker with the service's jobs now (a value only where one is given)."""
    choices = job_choices(service.list_jobs())
    picked = gr.update(choices=choices, value=value) if value else gr.update(choices=choices)
    return {studio.detail.job: picked, studio.compare.job: picked, studio.runs.jobs: gr.update(choices=choices)}


def _select_with_picker(studio: StudioTabs, service: StudioService, name: str):
    """Showing tab ``name`` by hand or from another tab: it polls, and its own job picker lists the jobs
    now, keeping its job or, when it has none, taking the job open on the Job detail tab. Only its own
    picker: the values this event reads may predate the update that switched the tab, and restating
    another tab's picker from them undid a job Launch had just set there. (A picker inside a tab not
    shown yet also drops a value set before it first renders, hence the fallback to the open job.)"""
    picker = {"detail": studio.detail.job, "compare": studio.compare.job, "runs": studio.runs.jobs}[name]

    def selected(current: Any, opened: str | None) -> Updates:
        # New choices with the value restated: a choices-only update can drop the value.
        choices = job_choices(service.list_jobs())
        if name == "runs":
            value = current or []
        else:
            value = current or opened
        return {**show_tab(studio, name), picker: gr.update(choices=choices, value=value)}

    return selected, picker


def wire_cross_tab(studio: StudioTabs, service: StudioService, blocks: gr.Blocks) -> None:
    launch, jobs, detail, compare = studio.launch, studio.jobs, studio.detail, studio.compare
    tab_outputs = [studio.tabs, jobs.timer, detail.timer]
    picker_outputs = [detail.job, compare.job, studio.runs.jobs]

    def on_launch(base: dict[str, Any] | None, *args: Any) -> Updates:
        values = values_of(args)
        job_id, message, errors = submit_form(service, base, values)
        if job_id is None:
            return {
                **field_updates(launch, errors, values),
                launch.errors: error_markdown(errors),
                launch.result: "",
            }
        return {
            **preview_updates(launch, base, values),
            launch.result: message,
            **show_tab(studio, "detail"),
            # In the same update as the tab switch: selecting the tab fires its select event, which
            # restates the pickers' values as the page holds them; a later step setting the new job
            # raced that event and lost (the job page stayed on "Loading job ...").
            **pickers(studio, service, job_id),
        }

    def open_job(job_id: str | None, shown: str | None) -> Updates:
        if not job_id:
            return unchanged(detail.job)
        updates = {**show_tab(studio, "detail"), detail.job: job_id, compare.job: job_id}
        if job_id != shown:
            # Blanked in the response that shows the tab: the detail queue's own blanking comes a moment later,
            # and until then the tab would show the previous job's body.
            updates.update(blank_body(detail, job_id))
        return updates

    def copy_to_launch(job_id: str | None) -> Updates:
        if not job_id:
            return unchanged(launch.base)
        return {**show_tab(studio, "launch"), **form_updates_from_config(launch, service.get_job(job_id).config)}

    def on_load(request: gr.Request) -> Updates:
        # State lives in the service: a reload (or a link with ?job=ID) re-attaches to the jobs there.
        listed = service.list_jobs()
        ids = [job.id for job in listed]
        wanted = request.query_params.get("job") if request is not None else None
        running = [job.id for job in listed if job.status in ("running", "queued")]
        chosen = wanted if wanted in ids else (running[0] if running else (ids[0] if ids else None))
        updates = {**refresh_updates(jobs, service, chosen), **pickers(studio, service, chosen)}
        if wanted in ids:
            updates.update(show_tab(studio, "detail"))
        return updates

    form = launch.inputs()
    for button in (launch.launch, launch.launch_bottom):
        button.click(
            on_launch,
            inputs=[launch.base, *form],
            outputs=[
                launch.errors,
                launch.result,
                launch.yaml_preview,
                launch.rewards.errors,
                *form,
                *tab_outputs,
                *picker_outputs,
            ],
            # One API endpoint for the two buttons: the top one's.
            api_name="launch" if button is launch.launch else None,
            api_visibility="public" if button is launch.launch else "private",
        )
    jobs.open.click(
        open_job,
        inputs=[jobs.job, detail.job],
        outputs=[*tab_outputs, detail.job, compare.job, *body_components(detail)],
        show_progress="hidden",
    )
    jobs.copy_to_launch.click(
        copy_to_launch, inputs=jobs.job, outputs=[*tab_outputs, launch.base, *form], show_progress="hidden"
    )

    # Switching tabs by hand: the new tab polls, the others stop; its job picker lists the jobs now.
    studio.tab_items["launch"].select(
        lambda: {**show_tab(studio, "launch"), launch.result: ""},
        outputs=[*tab_outputs, launch.result],
        show_progress="hidden",
    )
    studio.tab_items["jobs"].select(
        lambda selected: {**show_tab(studio, "jobs"), **refresh_updates(jobs, service, selected)},
        inputs=jobs.job,
        outputs=[*tab_outputs, jobs.empty, jobs.table, jobs.job],
        show_progress="hidden",
    )
    for name in ("detail", "compare", "runs"):
        selected, picker = _select_with_picker(studio, service, name)
        studio.tab_items[name].select(
            selected, inputs=[picker, detail.job], outputs=[*tab_outputs, picker], show_progress="hidden"
        )
    detail.job.change(None, inputs=detail.job, js=JOB_LINK_JS)
    blocks.load(
        on_load, outputs=[jobs.empty, jobs.table, jobs.job, *picker_outputs, *tab_outputs], show_progress="hidden"
    )
