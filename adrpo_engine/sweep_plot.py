"""The Pareto view of a sweep summary as a matplotlib figure (the CLI's PNG and the studio's Sweep page).

Two panels: reward vs diversity and reward vs divergence. One marker per grid point at its mean over
seeds with error bars of one std, each method's frontier joined by a line (sorted by x), dominated
points hollow, the reference as a black star.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the CLI and the web process draw to files

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from . import metrics as M  # noqa: E402
from .kinds import ALGORITHM_NAMES as METHOD_NAMES  # noqa: E402

METHOD_COLOURS = {"adrpo": "#d62728", "fixed": "#1f77b4", "orw": "#2ca02c"}


def point_label(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{key.split('.')[-1]}={value}" for key, value in params.items() if key != "algorithm")


def _axes_of(summary: Mapping[str, Any], plane: str) -> tuple[str, str]:
    """(x metric, y metric) of a plane: the non-reward metric on x, reward on y."""
    senses = summary["planes"][plane]
    x = next(name for name in senses if name != M.REWARD_MEAN)
    return x, M.REWARD_MEAN


def draw_plane(axis, summary: Mapping[str, Any], plane: str) -> None:
    x_name, y_name = _axes_of(summary, plane)
    points = [p for p in summary["points"] if x_name in p["mean"] and y_name in p["mean"]]
    methods = sorted({p["method"] for p in points}, key=lambda m: list(METHOD_COLOURS).index(m)
                     if m in METHOD_COLOURS else 99)
    for method in methods:
        colour = METHOD_COLOURS.get(method, "#7f7f7f")
        mine = [p for p in points if p["method"] == method]
        for p in mine:
            flags = p["frontier"][plane]
            axis.errorbar(p["mean"][x_name], p["mean"][y_name], xerr=p["std"].get(x_name, 0.0),
                          yerr=p["std"].get(y_name, 0.0), fmt="o", color=colour, capsize=3, markersize=7,
                          markerfacecolor=colour if flags["on_frontier"] else "white", alpha=0.9)
            axis.annotate(point_label(p["params"]), (p["mean"][x_name], p["mean"][y_name]), fontsize=7,
                          textcoords="offset points", xytext=(4, 4), color=colour)
        front = sorted((p["mean"][x_name], p["mean"][y_name]) for p in mine if p["frontier"][plane]["on_method_frontier"])
        if front:
            axis.plot(*zip(*front), "-", color=colour, linewidth=1.5, label=f"{METHOD_NAMES.get(method, method)} frontier")
    reference = summary.get("reference") or {}
    if x_name in reference and y_name in reference:
        axis.plot(reference[x_name], reference[y_name], "k*", markersize=12, label="reference")
    better_x = "right" if summary["planes"][plane][x_name] == "max" else "left"
    axis.set_xlabel(f"{x_name} (better: {better_x})")
    axis.set_ylabel(f"{y_name} (better: up)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")


def sweep_figure(summary: Mapping[str, Any], title: str = "") -> Figure:
    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    for axis, plane in zip(axes, ("diversity", "divergence")):
        draw_plane(axis, summary, plane)
        axis.set_title(f"reward vs {plane}", fontsize=10)
    figure.suptitle((title + "\n" if title else "") + "mean +- std over seeds; filled = on the overall frontier, "
                    "hollow = dominated; lines join each method's own frontier", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.9))  # room for the two-line title
    return figure


def save_sweep_figure(summary: Mapping[str, Any], path, title: str = "") -> None:
    figure = sweep_figure(summary, title)
    figure.savefig(path, dpi=120)
    plt.close(figure)
