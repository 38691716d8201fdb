"""Runs tab events: redraw the overlay and the two Pareto views when the picked jobs, the metric or the
smoothing change (or on Refresh)."""

from __future__ import annotations

import gradio as gr

from adrpo_engine import metrics as M

from .. import plots
from ..runs import RunsTab, load_runs
from ..service import StudioService, Updates


def draw(service: StudioService, tab: RunsTab, job_ids: list[str], metric: str, smoothing: float) -> Updates:
    runs, states = load_runs(service, job_ids)
    names = plots.metric_names(runs.values()) or list(M.PLOTTED)
    metric = metric or M.REWARD_MEAN
    return {
        tab.overlay: plots.overlay_figure(runs, metric, smoothing, states),
        tab.diversity_plot: plots.pareto_figure(runs, "diversity", smoothing, states),
        tab.divergence_plot: plots.pareto_figure(runs, "divergence", smoothing, states),
        tab.metric: gr.update(choices=names, value=metric),
        tab.note: f"{len(runs)} run(s)." if runs else "Pick one or more jobs above.",
    }


def wire_runs_tab(tab: RunsTab, service: StudioService) -> None:
    gr.on(
        [tab.jobs.change, tab.metric.input, tab.smoothing.release, tab.refresh.click],
        lambda job_ids, metric, smoothing: draw(service, tab, job_ids, metric, smoothing),
        inputs=[tab.jobs, tab.metric, tab.smoothing],
        outputs=[tab.overlay, tab.diversity_plot, tab.divergence_plot, tab.metric, tab.note],
        trigger_mode="always_last",
        api_name="runs_view",
    )
