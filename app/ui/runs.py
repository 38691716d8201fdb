"""Runs tab: several jobs on one chart, and each run's path through the reward-vs-diversity and
reward-vs-divergence planes (the paper's Pareto view: up and to the right is better diversity at the
same reward; up and to the left is less drift from the reference). Runs of different kinds (kl and w2)
get one divergence panel each. The events are wired in ``app/ui/events/runs.py``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from adrpo_engine import metrics as M

from . import plots
from .service import StudioService


@dataclass
class RunsTab:
    jobs: gr.Dropdown
    metric: gr.Dropdown
    smoothing: gr.Slider
    refresh: gr.Button
    overlay: gr.Plot
    diversity_plot: gr.Plot
    divergence_plot: gr.Plot
    note: gr.Markdown


def build_runs_tab() -> RunsTab:
    gr.Markdown(
        "Pick jobs to compare. Each run has one colour on all three charts; its curves start at the filled "
        "circle and end at a mark by the job's status: star succeeded, x failed, square cancelled, open "
        "circle still running."
    )
    with gr.Row():
        jobs = gr.Dropdown([], multiselect=True, label="Jobs", elem_id="runs-jobs", scale=4, allow_custom_value=True)
        metric = gr.Dropdown(
            list(M.PLOTTED),
            value=M.REWARD_MEAN,
            allow_custom_value=True,
            label="Overlay metric",
            elem_id="runs-metric",
            scale=2,
        )
        smoothing = gr.Slider(0.0, 0.95, value=0.8, step=0.05, label="Smoothing (EMA)", scale=2)
        refresh = gr.Button("Refresh", scale=1, elem_id="runs-refresh")
    note = gr.Markdown("", elem_id="runs-note")
    overlay = gr.Plot(plots.overlay_figure({}, M.REWARD_MEAN), show_label=False, elem_id="runs-overlay")
    with gr.Row():
        diversity_plot = gr.Plot(label="Reward vs diversity", elem_id="runs-pareto-diversity")
        divergence_plot = gr.Plot(
            label="Reward vs divergence (kl for LLM runs, w2 for flow runs)", elem_id="runs-pareto-divergence"
        )
    return RunsTab(jobs, metric, smoothing, refresh, overlay, diversity_plot, divergence_plot, note)


def load_runs(service: StudioService, job_ids: list[str]) -> tuple[dict[str, plots.Points], dict[str, plots.RunState]]:
    """Every metric point of each picked job, keyed by a readable, unique legend label, and each job's
    status and planned steps (the mark at the end of its curves)."""
    runs, states = {}, {}
    for job_id in job_ids or []:
        try:
            job = service.get_job(job_id)
        except LookupError:
            continue
        label = plots.run_label(job.id, job.name, job.algorithm, (job.config or {}).get("beta0"))
        runs[label] = plots.merge_points({}, service.get_metrics(job_id, since_step=0))
        states[label] = plots.RunState(status=str(job.status), total_steps=job.total_steps)
    return runs, states
