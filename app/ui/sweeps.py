"""Sweeps tab: a form for a grid of jobs (keys, values, seeds; the job count shown before launching) and a
sweep's page (progress of its jobs, eval metrics per grid point as mean +- std over seeds, the
reward-vs-diversity and reward-vs-divergence planes with each method's frontier, CSV/JSON export).

Everything shown comes from the service (``get_sweep``): a reload or another browser sees the same sweep.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from adrpo_engine import metrics as M
from adrpo_engine.config import ConfigError
from adrpo_engine.config_io import parse_override
from adrpo_engine.presets import PRESETS
from adrpo_engine.sweep import parse_grid_option

from .common import POLL_SECONDS, format_time

DEFAULT_GRID = "algorithm=adrpo,fixed,orw\nbeta0=0.05,0.1,0.2"
DEFAULT_OVERRIDES = "steps=60"
JOB_COLUMNS = ["job", "method", "grid point", "seed", "status", "step", "eval"]


@dataclass
class SweepsTab:
    preset: gr.Dropdown
    grid: gr.Textbox
    seeds: gr.Textbox
    overrides: gr.Textbox
    name: gr.Textbox
    count: gr.Markdown
    launch: gr.Button
    sweep: gr.Dropdown
    refresh: gr.Button
    cancel: gr.Button
    status: gr.Markdown
    points: gr.Dataframe
    plot: gr.Plot
    jobs: gr.Dataframe
    export_csv: gr.DownloadButton
    export_json: gr.DownloadButton
    timer: gr.Timer


# ----------------------------------------------------------------------------------------------
# The form (pure functions, tested without a browser)


def parse_form(preset: str, grid_text: str, seeds_text: str, overrides_text: str, name: str) -> dict[str, Any]:
    """The form as the service's submit_sweep keywords; ConfigError names the field at fault."""
    grid: dict[str, list[Any]] = {}
    for line in (grid_text or "").splitlines():
        if line.strip():
            key, values = parse_grid_option(line.strip())
            if key in grid:
                raise ConfigError(f"grid: {key} is given twice")
            grid[key] = values
    words = (seeds_text or "").replace(",", " ").split()
    try:
        seeds = [int(word) for word in words]
    except ValueError:
        raise ConfigError(f"seeds: expected integers such as 0 1 2 (got {seeds_text!r})") from None
    overrides = dict(parse_override(line.strip()) for line in (overrides_text or "").splitlines() if line.strip())
    return {
        "preset": preset,
        "grid": grid,
        "seeds": seeds,
        "overrides": overrides,
        "name": (name or "").strip() or None,
    }


def preview_count(preset: str, grid_text: str, seeds_text: str, overrides_text: str, name: str) -> str:
    """How many jobs the form would create, or why it would be refused (every job is validated)."""
    from worker.validation import SubmissionError, resolve_sweep

    try:
        form = parse_form(preset, grid_text, seeds_text, overrides_text, name)
        planned = resolve_sweep(None, form["preset"], form["overrides"], form["grid"], form["seeds"], form["name"])
    except (ConfigError, SubmissionError) as error:
        return f"**Not launchable:** {error}"
    points = len(planned.jobs) // max(len(planned.seeds), 1)
    return (
        f"**{len(planned.jobs)} jobs**: {points} grid points x {len(planned.seeds)} seeds, each evaluated "
        f"on held-out prompts when it finishes."
    )


# ----------------------------------------------------------------------------------------------
# The sweep page


def _pm(point: dict[str, Any], name: str) -> str:
    mean, std = point["mean"].get(name), point["std"].get(name)
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.4f} ± {std:.4f}"


def divergence_of(kind: str) -> str:
    from adrpo_engine.kinds import get_kind

    return get_kind(kind).divergence


def points_frame(view: Any) -> pd.DataFrame:
    """One row per grid point: its grid values, the method, the seeds evaluated, reward, diversity and
    divergence as mean ± std, and whether it is on its method's frontier in each plane."""
    divergence = divergence_of(view.kind)
    keys = [key for key in view.grid if key != "algorithm"]  # the method column says it
    columns = [
        *keys,
        "method",
        "seeds",
        "reward",
        "diversity",
        divergence,
        "frontier (diversity)",
        "frontier (divergence)",
    ]
    rows = []
    for point in view.points:
        flags = point["frontier"]

        def mark(plane: str) -> str:
            if flags[plane]["on_frontier"]:
                return "on (overall)"
            return "on (method)" if flags[plane]["on_method_frontier"] else "dominated"

        rows.append(
            [
                *(point["params"].get(key) for key in keys),
                point["method"],
                point["seeds"],
                _pm(point, M.REWARD_MEAN),
                _pm(point, M.DIVERSITY),
                _pm(point, divergence),
                mark("diversity"),
                mark("divergence"),
            ]
        )
    return pd.DataFrame(rows, columns=columns)


def jobs_frame(view: Any) -> pd.DataFrame:
    rows = [
        [
            job.name,
            job.method,
            ", ".join(f"{k}={v}" for k, v in job.params.items()),
            job.seed,
            job.status,
            f"{job.current_step}/{job.total_steps}",
            job.eval_status or "—",
        ]
        for job in view.jobs
    ]
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def status_markdown(view: Any) -> str:
    counts = ", ".join(f"{count} {state}" for state, count in sorted(view.progress.items()) if state != "evaluated")
    seeds = " ".join(str(seed) for seed in view.seeds)
    grid = "; ".join(f"{key} = {', '.join(map(str, values))}" for key, values in view.grid.items())
    return (
        f"### {view.name} `{view.id}` · **{view.status}**\n"
        f"{len(view.jobs)} jobs ({counts}); {view.progress.get('evaluated', 0)} evaluated · grid: {grid} · "
        f"seeds: {seeds} · created {format_time(view.created_at)}"
    )


def sweep_plot(view: Any):
    import matplotlib.pyplot as plt

    from adrpo_engine.sweep_plot import sweep_figure

    figure = sweep_figure(
        {"points": view.points, "planes": view.planes, "reference": view.reference},
        title=f"{view.name}: one point per grid point",
    )
    plt.close(figure)
    return figure


def export_files(service: Any, view: Any) -> tuple[str, str]:
    """The sweep's points as CSV and its whole view as JSON, in a temporary folder Gradio can serve."""
    folder = Path(tempfile.mkdtemp(prefix=f"sweep-{view.id}-"))
    csv_path = folder / f"sweep-{view.id}-points.csv"
    csv_path.write_text(service.sweep_points_csv(view.id))
    json_path = folder / f"sweep-{view.id}.json"
    json_path.write_text(json.dumps(view.model_dump(mode="json"), indent=1))
    return str(csv_path), str(json_path)


def sweep_choices(service: Any) -> list[tuple[str, str]]:
    return [(f"{s['name']} · {s['id'][:8]} · {s['jobs']} jobs", s["id"]) for s in service.list_sweeps()]


# ----------------------------------------------------------------------------------------------
# Layout and wiring


def build_sweeps_tab() -> SweepsTab:
    gr.Markdown(
        "A sweep trains one ordinary job per grid point and seed, evaluates each final checkpoint on "
        "held-out prompts with fixed noise, and compares methods frontier against frontier."
    )
    with gr.Row():
        with gr.Column(scale=2):
            preset = gr.Dropdown(
                [name for name, p in PRESETS.items() if p.demo] + [n for n, p in PRESETS.items() if not p.demo],
                value="digits-even",
                label="Base preset",
                elem_id="sweep-preset",
            )
            grid = gr.Textbox(DEFAULT_GRID, lines=3, label="Grid: one KEY=V1,V2,... per line", elem_id="sweep-grid")
            seeds = gr.Textbox("0 1 2", label="Seeds", elem_id="sweep-seeds")
        with gr.Column(scale=2):
            overrides = gr.Textbox(
                DEFAULT_OVERRIDES,
                lines=3,
                label="Overrides for every job: KEY=VALUE per line",
                elem_id="sweep-overrides",
            )
            name = gr.Textbox("", label="Sweep name (optional)", elem_id="sweep-name")
            count = gr.Markdown(initial_count(), elem_id="sweep-count")
            launch = gr.Button("Launch sweep", variant="primary", elem_id="sweep-launch")
    with gr.Row():
        sweep = gr.Dropdown([], label="Sweep", elem_id="sweep-pick", scale=4, allow_custom_value=True)
        refresh = gr.Button("Refresh", elem_id="sweep-refresh", scale=1)
        cancel = gr.Button("Cancel sweep", variant="stop", elem_id="sweep-cancel", scale=1)
    status = gr.Markdown("Launch a sweep or pick one.", elem_id="sweep-status")
    points = gr.Dataframe(
        interactive=False, wrap=True, label="Final eval per grid point (mean ± std over seeds)", elem_id="sweep-points"
    )
    plot = gr.Plot(label="Reward vs diversity and vs divergence", format="png", elem_id="sweep-plot")
    with gr.Row():
        export_csv = gr.DownloadButton("Export CSV", elem_id="sweep-export-csv", visible=False)
        export_json = gr.DownloadButton("Export JSON", elem_id="sweep-export-json", visible=False)
    jobs = gr.Dataframe(interactive=False, wrap=True, label="Jobs of the sweep", elem_id="sweep-jobs")
    timer = gr.Timer(POLL_SECONDS * 2)
    return SweepsTab(
        preset,
        grid,
        seeds,
        overrides,
        name,
        count,
        launch,
        sweep,
        refresh,
        cancel,
        status,
        points,
        plot,
        jobs,
        export_csv,
        export_json,
        timer,
    )


def wire_sweeps_tab(tab: SweepsTab, service: Any, studio: gr.Blocks | None = None) -> None:
    from worker.validation import SubmissionError

    form_inputs = [tab.preset, tab.grid, tab.seeds, tab.overrides, tab.name]
    page_outputs = [tab.status, tab.points, tab.plot, tab.jobs, tab.export_csv, tab.export_json]
    seen_state = gr.State(None)  # the signature of the sweep as last drawn

    def page(message: str, view: Any = None) -> dict[Any, Any]:
        """The sweep's page: its status line and, for a sweep, its tables, plot and exports."""
        if view is None:
            return {
                tab.status: message,
                tab.points: None,
                tab.plot: None,
                tab.jobs: None,
                tab.export_csv: gr.update(visible=False),
                tab.export_json: gr.update(visible=False),
            }
        csv_path, json_path = export_files(service, view)
        return {
            tab.status: message,
            tab.points: points_frame(view),
            tab.plot: sweep_plot(view),
            tab.jobs: jobs_frame(view),
            tab.export_csv: gr.update(value=csv_path, visible=True),
            tab.export_json: gr.update(value=json_path, visible=True),
        }

    def show(sweep_id: str | None) -> dict[Any, Any]:
        if not sweep_id:
            return page("Launch a sweep or pick one.")
        try:
            view = service.get_sweep(sweep_id)
        except LookupError as error:
            return page(f"**{error}**")
        return page(status_markdown(view), view)

    def launch(*values: Any) -> dict[Any, Any]:
        try:
            form = parse_form(*values)
            view = service.submit_sweep(**form)
        except (ConfigError, SubmissionError) as error:
            return {tab.count: f"**Not launched:** {error}"}
        return {
            tab.count: f"Launched **{view.name}** `{view.id}`: {len(view.jobs)} jobs queued.",
            tab.sweep: gr.update(choices=sweep_choices(service), value=view.id),
        }

    def cancel(sweep_id: str | None) -> dict[Any, Any]:
        if sweep_id:
            try:
                service.cancel_sweep(sweep_id)
            except LookupError:
                pass
        return show(sweep_id)

    def poll(sweep_id: str | None, seen: str | None) -> dict[Any, Any]:
        # Redraw only when the sweep moved on (job states, evals): polling an idle page costs no plotting.
        if not sweep_id:
            return {}
        try:
            view = service.get_sweep(sweep_id)
        except LookupError:
            return {}
        signature = json.dumps([sweep_id, view.status, view.progress, [j.current_step for j in view.jobs]])
        if signature == seen:
            return {}
        return {**page(status_markdown(view), view), seen_state: signature}

    def on_open() -> Any:
        return gr.update(choices=sweep_choices(service))

    gr.on(
        [tab.preset.change, tab.grid.change, tab.seeds.change, tab.overrides.change],
        preview_count,
        inputs=form_inputs,
        outputs=tab.count,
        trigger_mode="always_last",
        show_progress="hidden",
    )
    tab.launch.click(launch, inputs=form_inputs, outputs=[tab.count, tab.sweep], api_name="launch_sweep")
    gr.on(
        [tab.sweep.change, tab.refresh.click],
        show,
        inputs=tab.sweep,
        outputs=page_outputs,
        trigger_mode="always_last",
        api_name="sweep_view",
    )
    tab.refresh.click(on_open, outputs=tab.sweep)
    tab.cancel.click(cancel, inputs=tab.sweep, outputs=page_outputs, api_name="cancel_sweep")
    tab.timer.tick(poll, inputs=[tab.sweep, seen_state], outputs=[*page_outputs, seen_state], show_progress="hidden")
    if studio is not None:
        studio.load(on_open, outputs=tab.sweep)


def initial_count() -> str:
    return preview_count("digits-even", DEFAULT_GRID, "0 1 2", DEFAULT_OVERRIDES, "")
