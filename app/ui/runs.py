"""Runs tab: several jobs on one chart, and each run's path through the reward-vs-diversity and
reward-vs-divergence planes (the paper's Pareto view: up and to the right is better diversity at the
same reward; up and to the left is less drift from the reference)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from adrpo_engine import metrics as M

from . import plots


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
    gr.Markdown("Pick jobs to compare. Each path starts at the circle (step 1) and ends at the star.")
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
    overlay = gr.Plot(
        plots.curve_figure(plots.typed_frame([]), M.REWARD_MEAN), show_label=False, format="png", elem_id="runs-overlay"
    )
    with gr.Row():
        diversity_plot = gr.Plot(label="Reward vs diversity", format="png", elem_id="runs-pareto-diversity")
        divergence_plot = gr.Plot(label="Reward vs KL / W2", format="png", elem_id="runs-pareto-divergence")
    return RunsTab(jobs, metric, smoothing, refresh, overlay, diversity_plot, divergence_plot, note)


def load_runs(service: Any, job_ids: list[str]) -> dict[str, plots.Points]:
    """Every metric point of each picked job, keyed by a readable, unique legend label."""
    runs = {}
    for job_id in job_ids or []:
        try:
            job = service.get_job(job_id)
        except LookupError:
            continue
        label = plots.run_label(job.id, job.name, job.algorithm, (job.config or {}).get("beta0"))
        runs[label] = plots.merge_points({}, service.get_metrics(job_id, since_step=0))
    return runs


def wire_runs_tab(tab: RunsTab, service: Any) -> None:
    def draw(job_ids: list[str], metric: str, smoothing: float) -> list[Any]:
        runs = load_runs(service, job_ids)
        if not runs:
            note = "Pick one or more jobs above."
        else:
            note = f"{len(runs)} run(s)."
        names = plots.metric_names(runs.values()) or list(M.PLOTTED)
        metric = metric or M.REWARD_MEAN
        return [
            plots.curve_figure(plots.overlay_frame(runs, metric, smoothing), metric, legend_title="run"),
            plots.pareto_figure(runs, "diversity", smoothing),
            plots.pareto_figure(runs, "divergence", smoothing),
            gr.update(choices=names, value=metric),
            note,
        ]

    outputs = [tab.overlay, tab.diversity_plot, tab.divergence_plot, tab.metric, tab.note]
    inputs = [tab.jobs, tab.metric, tab.smoothing]
    gr.on(
        [tab.jobs.change, tab.metric.input, tab.smoothing.release, tab.refresh.click],
        draw,
        inputs=inputs,
        outputs=outputs,
        trigger_mode="always_last",
        api_name="runs_view",
    )
