"""Curves and Pareto plots from metric points, with no Gradio import (tested as pure functions).

Points come from ``JobService.get_metrics``: ``{name: [(step, value), ...]}`` sorted by step. Curves
are long-format DataFrames (step, value, series) drawn as Plotly figures (``gr.Plot``): the browser
draws them, with hover values, zoom and a legend whose entries toggle their series, and the web
process only sends JSON: the job page's five charts of 120 steps cost 0.36 s of CPU as Plotly JSON and
1.98 s as matplotlib PNGs (measured side by side on the loaded 2-core machine), and with a poll every
2 s the PNGs kept a core busy that the training worker needed. Gradio 6.31's native LinePlot was not used: it collapsed
to an empty frame when a visible chart was updated with growing data, which is what a live chart does.
The Pareto view (one trajectory per run in the reward-vs-diversity and reward-vs-divergence planes)
joins points in step order, not sorted by x, and draws one panel per divergence (kl and w2 are
different quantities and never share an axis). The Runs overlay and the Pareto paths mark each run the
same way (:func:`add_run_marks`): one colour per run across all three charts, a filled circle at its
first point and, at its last, a mark by the job's status (star succeeded, x failed, square cancelled,
open circle while it may still grow).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from adrpo_engine import metrics as M
from adrpo_engine.kinds import get_kind

Points = dict[str, list[tuple[int, float]]]
FRAME_COLUMNS = ["step", "value", "series"]
# Typed even when empty: a chart first drawn from an untyped empty frame keeps a categorical x axis.
FRAME_TYPES = {"step": "int64", "value": "float64", "series": "object"}


def typed_frame(rows: list[tuple[int, float, str]]) -> pd.DataFrame:
    """Long-format (step, value, series) rows with numeric step and value columns."""
    return pd.DataFrame(rows, columns=FRAME_COLUMNS).astype(FRAME_TYPES)


@dataclass(frozen=True)
class Panel:
    """One live chart of the job page: a title and the metrics drawn on it."""

    key: str
    title: str
    metrics: tuple[str, ...]
    smoothed: bool = False  # also draw an exponential moving average of each metric


def panels_for(kind: str) -> list[Panel]:
    """The job page's charts: reward, the kind's divergence (kl for LLMs, w2 for flows), beta_eff, the
    entropy/diversity axis of the paper's figures, and the loss."""
    spec = get_kind(kind)
    divergence, spread = spec.divergence, spec.spread_metrics
    return [
        Panel("reward", "Reward (mean)", (M.REWARD_MEAN,), smoothed=True),
        Panel("divergence", f"Divergence to the reference ({divergence})", (divergence,)),
        Panel("beta", "Effective beta (mean / min / max)", (M.BETA_MEAN, M.BETA_MIN, M.BETA_MAX)),
        Panel("spread", " and ".join(spread).capitalize(), spread),
        Panel("loss", "Loss", (M.LOSS,), smoothed=True),
    ]


def merge_points(known: Points, new: Mapping[str, Sequence[Sequence[float]]]) -> Points:
    """Append newly fetched points (``get_metrics(since_step=...)``) to those already shown; a step
    that is already known is replaced, so a resumed job never draws a point twice."""
    merged: Points = {name: list(values) for name, values in known.items()}
    for name, values in new.items():
        by_step = dict(merged.get(name, []))
        by_step.update((int(step), float(value)) for step, value in values)
        merged[name] = sorted(by_step.items())
    return merged


def last_step(points: Points) -> int:
    """The newest step with any metric (0 when none): the ``since_step`` of the next fetch."""
    return max((values[-1][0] for values in points.values() if values), default=0)


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's bias correction: weight 0 returns the values."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1) (got {weight})")
    smoothed, running = [], 0.0
    for count, value in enumerate(values, start=1):
        running = weight * running + (1.0 - weight) * value
        smoothed.append(running / (1.0 - weight**count))
    return smoothed


def panel_metrics(points: Points, panel: Panel) -> tuple[str, ...]:
    """The panel's metrics; the reward panel adds each reward's own curve (``reward/<name>``, and reward
    breakdowns such as ``reward/geneval/position``) of a job that logs them."""
    if panel.key != "reward":
        return panel.metrics
    return panel.metrics + tuple(sorted(name for name in points if M.is_reward_component(name)))


def panel_frame(points: Points, panel: Panel, smoothing: float = 0.0, label: str = "") -> pd.DataFrame:
    """Long-format rows (step, value, series) of one panel; smoothed panels add an "(EMA)" series (of
    the panel's own metrics, not of the per-reward curves)."""
    rows = []
    for name in panel_metrics(points, panel):
        values = [(s, v) for s, v in points.get(name, []) if math.isfinite(v)]
        series = f"{label} {name}".strip()
        rows += [(s, v, series) for s, v in values]
        if panel.smoothed and smoothing > 0 and values and name in panel.metrics:
            smooth = ema([v for _, v in values], smoothing)
            rows += [(s, v, f"{series} (EMA)") for (s, _), v in zip(values, smooth)]
    return typed_frame(rows)


PLOT_HEIGHT = 290
HOVER = "step %{x}<br>%{y:.4~g}<extra>%{fullData.name}</extra>"


def value_axis(values: Sequence[float]) -> dict:
    """Y-axis settings that show what varies and no more: a series constant up to float noise (a fixed
    beta stored as float32 reads 0.100000002...0.100000008) gets a range around its value instead of
    ticks magnifying the noise; ticks use at most 4 significant digits."""
    axis: dict = {"tickformat": ".4~g", "zeroline": False}
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        scale = max(abs(low), abs(high), 1e-12)
        if high - low <= 1e-6 * scale:
            pad = 0.1 * scale if scale > 1e-9 else 1.0
            axis["range"] = [low - pad, high + pad]
    return axis


def _layout(figure: go.Figure, title: str, legend_title: str | None, revision: str) -> go.Figure:
    figure.update_layout(
        title={"text": title, "font": {"size": 13}},
        height=PLOT_HEIGHT,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
        legend={"title": {"text": legend_title or ""}, "font": {"size": 10}, "orientation": "h", "y": -0.25},
        hovermode="x unified",
        template="plotly_white",
        # Same revision on every redraw: zoom and series switched off in the legend survive new points.
        uirevision=revision,
    )
    figure.update_xaxes(title_text="step", tickformat="d")
    return figure


def curve_figure(
    frame: pd.DataFrame, title: str, legend_title: str | None = None, revision: str | None = None
) -> go.Figure:
    """One chart of (step, value, series) rows: a line per series; "(EMA)" series drawn bold over
    their lighter raw series."""
    figure = go.Figure()
    has_smooth = frame["series"].str.endswith("(EMA)").any()
    for series, rows in frame.groupby("series", sort=False):
        smooth = str(series).endswith("(EMA)")
        figure.add_trace(
            go.Scatter(
                x=rows["step"].tolist(),
                y=rows["value"].tolist(),
                name=str(series),
                mode="lines",
                line={"width": 2.4 if smooth else 1.3},
                opacity=0.95 if smooth or not has_smooth else 0.4,
                hovertemplate=HOVER,
            )
        )
    _layout(figure, title, legend_title, revision or title)
    figure.update_yaxes(**value_axis(frame["value"].tolist()))
    if frame.empty:
        figure.add_annotation(
            text="no points yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"color": "gray"}
        )
    return figure


@dataclass(frozen=True)
class RunState:
    """Where a run's job stands, for the mark at the end of its curves."""

    status: str  # a JobStatus value: queued, running, succeeded, failed, cancelled
    total_steps: int | None = None


START_SYMBOL = "circle"
# The mark at a run's last point says how the job ended; a job that is not finished (running, or
# queued again after its worker died) gets an open circle: its curve may still grow.
END_SYMBOLS = {"succeeded": "star", "failed": "x", "cancelled": "square"}
OPEN_END_SYMBOL = "circle-open"
MARK_SIZES = {"circle": 8, "star": 14, "x": 11, "square": 10, "circle-open": 11}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def run_colors(labels: Iterable[str]) -> dict[str, str]:
    """One colour per run, by its place among the picked runs: the same run has the same colour on the
    overlay and on both Pareto views."""
    return {label: PALETTE[index % len(PALETTE)] for index, label in enumerate(labels)}


def end_mark(state: RunState | None, step: int) -> tuple[str, str]:
    """(symbol, hover text) of a run's last drawn point, e.g. ("star", "end (succeeded) at step 8 of 8")."""
    of = f" of {state.total_steps}" if state is not None and state.total_steps else ""
    if state is None:
        return OPEN_END_SYMBOL, f"last point at step {step}"
    if state.status in END_SYMBOLS:
        return END_SYMBOLS[state.status], f"end ({state.status}) at step {step}{of}"
    return OPEN_END_SYMBOL, f"last point ({state.status}) at step {step}{of}"


def add_run_marks(
    figure: go.Figure,
    label: str,
    steps: Sequence[int],
    xs: Sequence[float],
    ys: Sequence[float],
    state: RunState | None,
    color: str,
    value_hover: str,
    row: int | None = None,
    col: int | None = None,
) -> None:
    """A run's start and end marks on an already drawn line (``row``/``col``: its subplot). The trace
    shares the line's legend group, so hiding the run in the legend hides its marks too."""
    symbol, end_text = end_mark(state, steps[-1])
    symbols = [START_SYMBOL, symbol]
    figure.add_trace(
        go.Scatter(
            x=[xs[0], xs[-1]],
            y=[ys[0], ys[-1]],
            text=[f"start at step {steps[0]}", end_text],
            mode="markers",
            name=label,
            legendgroup=label,
            showlegend=False,
            hovertemplate="%{text}<br>" + value_hover + "<extra>" + label + "</extra>",
            marker={
                "color": color,
                "symbol": symbols,
                "size": [MARK_SIZES[s] for s in symbols],
                "line": {"color": color, "width": 2},
            },
        ),
        row=row,
        col=col,
    )


def overlay_figure(
    runs: Mapping[str, Points],
    metric: str,
    smoothing: float = 0.0,
    states: Mapping[str, RunState] | None = None,
) -> go.Figure:
    """The Runs overlay: one line per run (only its EMA when ``smoothing`` > 0), a circle at its first
    point and its status mark at its last."""
    frame = overlay_frame(runs, metric, smoothing)
    colors = run_colors(runs)
    figure = go.Figure()
    for label, rows in frame.groupby("series", sort=False):
        label = str(label)
        steps, values = rows["step"].tolist(), rows["value"].tolist()
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                name=label,
                legendgroup=label,
                mode="lines",
                line={"color": colors[label], "width": 1.8},
                hovertemplate=HOVER,
            )
        )
        add_run_marks(figure, label, steps, steps, values, (states or {}).get(label), colors[label], "%{y:.4~g}")
    _layout(figure, metric, "run", "runs-overlay")
    figure.update_yaxes(**value_axis(frame["value"].tolist()))
    if frame.empty:
        figure.add_annotation(
            text="no points yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"color": "gray"}
        )
    return figure


def overlay_frame(runs: Mapping[str, Points], metric: str, smoothing: float = 0.0) -> pd.DataFrame:
    """One metric of several runs on one chart, a series per run label."""
    frames = []
    panel = Panel(metric, metric, (metric,), smoothed=smoothing > 0)
    for label, points in runs.items():
        frame = panel_frame(points, panel, smoothing)
        if smoothing > 0:  # draw only the smoothed line per run: raw + EMA of many runs is unreadable
            frame = frame[frame["series"].str.endswith("(EMA)")]
        frame = frame.assign(series=label)
        frames.append(frame)
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return typed_frame([])
    return pd.concat(frames, ignore_index=True).astype(FRAME_TYPES)


def trajectory(points: Points, x_metric: str, y_metric: str = M.REWARD_MEAN) -> list[tuple[int, float, float]]:
    """(step, x, y) for the steps that logged both metrics, in step order."""
    xs = dict(points.get(x_metric, []))
    return [
        (step, xs[step], y)
        for step, y in points.get(y_metric, [])
        if step in xs and math.isfinite(xs[step]) and math.isfinite(y)
    ]


def divergence_metric(points: Points) -> str:
    """kl when the run logged it (LLM), else w2 (flow)."""
    return M.KL if points.get(M.KL) else M.W2


def pareto_figure(
    runs: Mapping[str, Points],
    x_axis: str,
    smoothing: float = 0.0,
    states: Mapping[str, RunState] | None = None,
) -> go.Figure:
    """Each run's path through the (x, reward) plane, marked like the overlay (:func:`add_run_marks`).

    ``x_axis`` is "diversity" or "divergence": the paper's reward-vs-diversity and reward-vs-KL/W2
    views. For "divergence", runs that logged kl (LLMs) and runs that logged w2 (flows) get a panel
    each. ``smoothing`` (EMA weight) calms noisy paths."""
    groups: dict[str, dict[str, Points]] = {}
    for label, points in runs.items():
        x_metric = M.DIVERSITY if x_axis == "diversity" else divergence_metric(points)
        groups.setdefault(x_metric, {})[label] = points
    names = sorted(groups) or [M.DIVERSITY if x_axis == "diversity" else "divergence"]
    figure = make_subplots(rows=1, cols=len(names), subplot_titles=[f"reward vs {name}" for name in names])
    colors = run_colors(runs)
    drawn = 0
    for column, x_metric in enumerate(names, start=1):
        for label, points in groups.get(x_metric, {}).items():
            path = trajectory(points, x_metric)
            state = (states or {}).get(label)
            drawn += _add_path(figure, label, path, smoothing, column, colors[label], state)
        figure.update_xaxes(title_text=x_metric, tickformat=".3~g", row=1, col=column)
    figure.update_yaxes(title_text="reward (mean)", tickformat=".3~g", row=1, col=1)
    figure.update_layout(
        height=420,
        margin={"l": 55, "r": 10, "t": 40, "b": 45},
        template="plotly_white",
        legend={"font": {"size": 10}},
        uirevision=x_axis,
    )
    if not drawn:
        figure.add_annotation(
            text="pick jobs with logged metrics",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            font={"color": "gray"},
        )
    return figure


def _add_path(
    figure: go.Figure,
    label: str,
    path: list[tuple[int, float, float]],
    smoothing: float,
    column: int,
    color: str,
    state: RunState | None,
) -> int:
    """One run's path (line, start and end marks) in panel ``column``; 1 if drawn, 0 if it has no points."""
    if not path:
        return 0
    steps, xs, ys = [s for s, _, _ in path], [x for _, x, _ in path], [y for _, _, y in path]
    if smoothing > 0:
        xs, ys = ema(xs, smoothing), ema(ys, smoothing)
    figure.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            customdata=steps,
            mode="lines",
            name=label,
            legendgroup=label,
            line={"color": color, "width": 1.6},
            hovertemplate="step %{customdata}<br>x %{x:.4~g}<br>reward %{y:.4~g}<extra>" + label + "</extra>",
        ),
        row=1,
        col=column,
    )
    add_run_marks(figure, label, steps, xs, ys, state, color, "x %{x:.4~g}<br>reward %{y:.4~g}", row=1, col=column)
    return 1


def run_label(job_id: str, name: str, algorithm: str, beta0: float | None) -> str:
    """A short, unique legend entry: name, algorithm, beta0 and the id's first characters."""
    beta = "" if beta0 is None else f" b0={beta0:g}"
    return f"{name} [{algorithm}{beta}] {job_id[:6]}"


def metric_names(runs: Iterable[Points]) -> list[str]:
    """Every metric logged by any of the runs, plotted ones first."""
    seen = {name for points in runs for name, values in points.items() if values}
    first = [name for name in M.PLOTTED if name in seen]
    return first + sorted(seen - set(first))
