"""Curves and Pareto plots from metric points, with no Gradio import (tested as pure functions).

Points come from ``JobService.get_metrics``: ``{name: [(step, value), ...]}`` sorted by step. Curves
are long-format DataFrames (step, value, series) drawn as matplotlib figures: Gradio 6.31's native
LinePlot collapses when a visible chart is updated with growing data (seen in Chromium), and a live
chart is exactly that. The Pareto view (one trajectory per run in the reward-vs-diversity and
reward-vs-divergence planes) joins points in step order, not sorted by x.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # the web process has no display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from adrpo_engine import metrics as M  # noqa: E402
from adrpo_engine.kinds import get_kind  # noqa: E402

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
    """The panel's metrics; the reward panel adds each reward's own curve (``reward/<name>``) of a
    multi-reward job."""
    if panel.key != "reward":
        return panel.metrics
    return panel.metrics + tuple(sorted(name for name in points if M.is_reward_component(name)))


def panel_frame(points: Points, panel: Panel, smoothing: float = 0.0, label: str = "") -> pd.DataFrame:
    """Long-format rows (step, value, series) of one panel; smoothed panels add an "(EMA)" series."""
    rows = []
    for name in panel_metrics(points, panel):
        values = [(s, v) for s, v in points.get(name, []) if math.isfinite(v)]
        series = f"{label} {name}".strip()
        rows += [(s, v, series) for s, v in values]
        if panel.smoothed and smoothing > 0 and values and name in panel.metrics:
            smooth = ema([v for _, v in values], smoothing)
            rows += [(s, v, f"{series} (EMA)") for (s, _), v in zip(values, smooth)]
    return typed_frame(rows)


def curve_figure(frame: pd.DataFrame, title: str, legend_title: str | None = None) -> Figure:
    """One chart of (step, value, series) rows: a line per series; "(EMA)" series drawn bold over
    their lighter raw series."""
    figure, axes = plt.subplots(figsize=(4.6, 2.8), dpi=100)
    raw_alpha = 0.35 if frame["series"].str.endswith("(EMA)").any() else 0.95
    for series, rows in frame.groupby("series", sort=False):
        smooth = str(series).endswith("(EMA)")
        axes.plot(rows["step"], rows["value"], linewidth=2.0 if smooth else 1.2,
                  alpha=0.95 if smooth else raw_alpha, label=str(series))
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("step", fontsize=8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    axes.ticklabel_format(axis="y", useOffset=False)  # a constant beta reads 0.1, not 1e-9 + 1e-1
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    if frame.empty:
        axes.text(0.5, 0.5, "no points yet", ha="center", va="center", transform=axes.transAxes, color="gray")
    else:
        axes.legend(fontsize=7, loc="best", title=legend_title, title_fontsize=7)
    figure.tight_layout()
    plt.close(figure)
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
    return [(step, xs[step], y) for step, y in points.get(y_metric, [])
            if step in xs and math.isfinite(xs[step]) and math.isfinite(y)]


def divergence_metric(points: Points) -> str:
    """kl when the run logged it (LLM), else w2 (flow)."""
    return M.KL if points.get(M.KL) else M.W2


def pareto_figure(runs: Mapping[str, Points], x_axis: str, smoothing: float = 0.0) -> Figure:
    """Each run's path through the (x, reward) plane, start marked with a circle and end with a star.

    ``x_axis`` is "diversity" or "divergence" (kl or w2, whichever the run logged): the paper's
    reward-vs-diversity and reward-vs-KL/W2 views. ``smoothing`` (EMA weight) calms noisy paths."""
    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    labels = []
    for label, points in runs.items():
        x_metric = M.DIVERSITY if x_axis == "diversity" else divergence_metric(points)
        path = trajectory(points, x_metric)
        if not path:
            continue
        xs, ys = [x for _, x, _ in path], [y for _, _, y in path]
        if smoothing > 0:
            xs, ys = ema(xs, smoothing), ema(ys, smoothing)
        (line,) = axes.plot(xs, ys, "-", linewidth=1.4, alpha=0.85, label=label)
        axes.plot(xs[0], ys[0], "o", color=line.get_color(), markersize=6)
        axes.plot(xs[-1], ys[-1], "*", color=line.get_color(), markersize=13)
        labels.append(label)
    names = {"diversity": "diversity", "divergence": "divergence to the reference (kl or w2)"}
    axes.set_xlabel(names.get(x_axis, x_axis))
    axes.set_ylabel("reward (mean)")
    axes.grid(alpha=0.3)
    if labels:
        axes.legend(fontsize=8, loc="best")
        axes.set_title("reward vs " + x_axis, fontsize=10)
    else:
        axes.text(0.5, 0.5, "pick jobs with logged metrics", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    plt.close(figure)  # Gradio renders the Figure object; keep pyplot's registry from growing
    return figure


def run_label(job_id: str, name: str, algorithm: str, beta0: float | None) -> str:
    """A short, unique legend entry: name, algorithm, beta0 and the id's first characters."""
    beta = "" if beta0 is None else f" b0={beta0:g}"
    return f"{name} [{algorithm}{beta}] {job_id[:6]}"


def metric_names(runs: Iterable[Points]) -> list[str]:
    """Every metric logged by any of the runs, plotted ones first."""
    seen = {name for points in runs for name, values in points.items() if values}
    first = [name for name in M.PLOTTED if name in seen]
    return first + sorted(seen - set(first))
