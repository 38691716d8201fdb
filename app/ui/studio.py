"""The studio: the five tabs in one gr.Blocks, and the events that cross tabs (Launch opens the new
job, Jobs opens or copies a job, the page load re-attaches to the jobs the service knows)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from adrpo_engine.config import ConfigError

from . import forms
from .common import job_choices
from .compare import build_compare_tab, wire_compare_tab
from .detail import build_detail_tab, wire_detail_tab
from .jobs import build_jobs_tab, wire_jobs_tab
from .launch import build_launch_tab, error_markdown, form_updates_from_config, values_of
from .reward_rows import wire_try
from .runs import build_runs_tab, wire_runs_tab
from .sweeps import build_sweeps_tab, wire_sweeps_tab

TITLE = "ADRPO Studio"
CSS = """
.pixelated img { image-rendering: pixelated; }
#launch-errors { min-height: 2em; }
"""
HEADER = (
    "# ADRPO Studio\n"
    "RL fine-tuning of generative models with **Adaptive Divergence Regularized Policy Optimization**: "
    "each sample's pull towards the reference is β₀ − A (its clipped advantage). "
    "Launch a job, watch it train, compare with the reference, download the LoRA adapter."
)


def build_studio(service: Any) -> gr.Blocks:
    with gr.Blocks(title=TITLE, analytics_enabled=False) as studio:
        gr.Markdown(HEADER)
        with gr.Tabs(selected="launch", elem_id="studio-tabs") as tabs:
            with gr.Tab("Launch", id="launch", elem_id="tab-launch"):
                launch = build_launch_tab()
            with gr.Tab("Jobs", id="jobs", elem_id="tab-jobs"):
                jobs = build_jobs_tab()
            with gr.Tab("Job detail", id="detail", elem_id="tab-detail"):
                detail = build_detail_tab(service)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                compare = build_compare_tab()
            with gr.Tab("Runs", id="runs", elem_id="tab-runs"):
                runs = build_runs_tab()
            with gr.Tab("Sweeps", id="sweeps", elem_id="tab-sweeps"):
                sweeps = build_sweeps_tab()
        refresh_jobs = wire_jobs_tab(jobs, service)
        wire_detail_tab(detail, service)
        wire_compare_tab(compare, service)
        wire_runs_tab(runs, service)
        wire_sweeps_tab(sweeps, service, studio)
        _wire_launch(launch, tabs, detail.job, compare.job, service)
        _wire_cross_tab(jobs, launch, tabs, detail.job, compare.job, runs.jobs, refresh_jobs, service, studio)
    return studio


def submit_form(service: Any, base: dict[str, Any] | None, values: dict[str, Any]) -> tuple[str | None, str]:
    """Submit the form through the service: (job id, message) or (None, the validation message)."""
    from worker.service import SubmissionError

    try:
        config = forms.config_from_form(values, base)
        job = service.submit(config)
    except (ConfigError, SubmissionError) as error:
        return None, error_markdown(str(error))
    return job.id, f"Launched **{job.name}** `{job.id}` ({job.status}). Opening it…"


def _wire_launch(launch: Any, tabs: gr.Tabs, detail_job: gr.Dropdown, compare_job: gr.Dropdown, service: Any) -> None:
    def on_launch(base: dict[str, Any] | None, *args: Any) -> list[Any]:
        job_id, message = submit_form(service, base, values_of(args))
        if job_id is None:
            return [message, "", gr.skip(), None]
        return ["", message, gr.Tabs(selected="detail"), job_id]

    def open_launched(job_id: str | None) -> list[Any]:
        # A second step, after the tab switch: charts first drawn inside a hidden tab stay collapsed.
        if not job_id:
            return [gr.skip(), gr.skip()]
        choices = job_choices(service.list_jobs())
        return [gr.update(choices=choices, value=job_id), gr.update(choices=choices, value=job_id)]

    wire_try(launch.rewards, service, lambda base, *args: forms.config_from_form(values_of(args), base),
             inputs=[launch.base, *launch.inputs()])
    launched = gr.State(None)
    launch.launch.click(on_launch, inputs=[launch.base, *launch.inputs()],
                        outputs=[launch.errors, launch.result, tabs, launched], api_name="launch").then(
        open_launched, inputs=launched, outputs=[detail_job, compare_job], show_progress="hidden")


def _wire_cross_tab(jobs: Any, launch: Any, tabs: gr.Tabs, detail_job: gr.Dropdown, compare_job: gr.Dropdown,
                    runs_jobs: gr.Dropdown, refresh_jobs: Any, service: Any, studio: gr.Blocks) -> None:
    def open_job(job_id: str | None) -> list[Any]:
        if not job_id:
            return [gr.skip()] * 3
        return [gr.Tabs(selected="detail"), job_id, job_id]

    def copy_to_launch(job_id: str | None) -> list[Any]:
        if not job_id:
            return [gr.skip()] * (len(forms.FIELDS) + 2)
        job = service.get_job(job_id)
        return [gr.Tabs(selected="launch"), *form_updates_from_config(job.config)]

    def sync_choices(known: list[Any]) -> list[Any]:
        # New jobs appear in every job picker; pickers keep their value (no update when nothing changed).
        choices = job_choices(service.list_jobs())
        if [list(c) for c in choices] == [list(c) for c in (known or [])]:
            return [gr.skip()] * 4
        update = gr.update(choices=choices)
        return [update, update, update, choices]

    def on_load(request: gr.Request) -> list[Any]:
        # State lives in the service: a reload (or a link with ?job=ID) re-attaches to the jobs there.
        jobs_list = service.list_jobs()
        choices = job_choices(jobs_list)
        ids = [job.id for job in jobs_list]
        wanted = request.query_params.get("job") if request is not None else None
        running = [job.id for job in jobs_list if job.status in ("running", "queued")]
        chosen = wanted if wanted in ids else (running[0] if running else (ids[0] if ids else None))
        selected = gr.Tabs(selected="detail") if wanted in ids else gr.skip()
        picker = gr.update(choices=choices, value=chosen)
        return [*refresh_jobs(chosen), picker, picker, gr.update(choices=choices), choices, selected]

    known_choices = gr.State([])
    jobs.open.click(open_job, inputs=jobs.job, outputs=[tabs, detail_job, compare_job])
    jobs.copy_to_launch.click(copy_to_launch, inputs=jobs.job, outputs=[tabs, launch.base, *launch.inputs()])
    jobs.timer.tick(sync_choices, inputs=known_choices, outputs=[detail_job, compare_job, runs_jobs, known_choices],
                    show_progress="hidden")
    studio.load(on_load, outputs=[jobs.empty, jobs.table, jobs.job, detail_job, compare_job, runs_jobs,
                                  known_choices, tabs])
