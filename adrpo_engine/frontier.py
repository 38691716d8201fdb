"""Pareto frontiers of eval points: dominance, per-method frontiers, mean and std over seeds.

A point is a dict of metric values. ``senses`` says, per metric, whether larger (``"max"``) or smaller
(``"min"``) is better: reward vs diversity is ``{"reward/mean": "max", "diversity": "max"}``, reward vs
divergence ``{"reward/mean": "max", "kl": "min"}``. Point ``a`` dominates ``b`` when it is at least as
good on every metric and strictly better on one; two equal points do not dominate each other, so ties
are both on the frontier. Pure functions, no torch.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Senses = Mapping[str, str]


def _better_or_equal(a: float, b: float, sense: str) -> bool:
    return a >= b if sense == "max" else a <= b


def _strictly_better(a: float, b: float, sense: str) -> bool:
    return a > b if sense == "max" else a < b


def _check_senses(senses: Senses) -> None:
    bad = {name: sense for name, sense in senses.items() if sense not in ("max", "min")}
    if bad or not senses:
        raise ValueError(f"senses must map metric names to 'max' or 'min' (got {dict(senses)!r})")


def dominates(a: Mapping[str, float], b: Mapping[str, float], senses: Senses) -> bool:
    """``a`` is at least as good as ``b`` on every metric of ``senses`` and strictly better on one."""
    _check_senses(senses)
    if not all(_better_or_equal(a[name], b[name], sense) for name, sense in senses.items()):
        return False
    return any(_strictly_better(a[name], b[name], sense) for name, sense in senses.items())


def _usable(point: Mapping[str, float], senses: Senses) -> bool:
    return all(isinstance(point.get(name), (int, float)) and math.isfinite(point[name]) for name in senses)


def frontier_indices(points: Sequence[Mapping[str, float]], senses: Senses) -> list[int]:
    """Indices of the points no other point dominates (points missing a metric are never on it)."""
    usable = [i for i, point in enumerate(points) if _usable(point, senses)]
    return [i for i in usable if not any(dominates(points[j], points[i], senses) for j in usable if j != i)]


def dominated_by(points: Sequence[Mapping[str, float]], senses: Senses) -> list[list[int]]:
    """For each point, the indices of the points that dominate it."""
    return [[j for j, other in enumerate(points) if j != i and _usable(other, senses) and _usable(point, senses)
             and dominates(other, point, senses)] for i, point in enumerate(points)]


def frontier_line(points: Sequence[Mapping[str, float]], senses: Senses, x: str, y: str) -> list[tuple[float, float]]:
    """The frontier's points as ``(x, y)`` sorted by ``x``: what a plot joins with a line."""
    on = frontier_indices(points, senses)
    return sorted((float(points[i][x]), float(points[i][y])) for i in on)


def per_method_frontiers(points: Sequence[Mapping[str, Any]], senses: Senses, method_key: str = "method"
                         ) -> dict[Hashable, list[int]]:
    """For each method (``point[method_key]``), the indices (into ``points``) of its own frontier."""
    groups: dict[Hashable, list[int]] = {}
    for index, point in enumerate(points):
        groups.setdefault(point[method_key], []).append(index)
    return {method: [members[i] for i in frontier_indices([points[m] for m in members], senses)]
            for method, members in groups.items()}


# ----------------------------------------------------------------------------------------------
# Mean and std over seeds


@dataclass
class Aggregate:
    """The seeds of one grid point: per metric the mean, the sample std (0 for one seed) and the count."""

    key: tuple[tuple[str, Any], ...]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    members: list[int] = field(default_factory=list)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.key)


def aggregate(rows: Sequence[Mapping[str, Any]], group_keys: Sequence[str], metrics: Iterable[str]
              ) -> list[Aggregate]:
    """Group rows by the values of ``group_keys`` (first-seen order) and average each metric over the
    group's rows that have a finite value for it."""
    metrics = list(metrics)
    groups: dict[tuple, Aggregate] = {}
    for index, row in enumerate(rows):
        key = tuple((name, _hashable(row.get(name))) for name in group_keys)
        groups.setdefault(key, Aggregate(key=key)).members.append(index)
    for group in groups.values():
        for metric in metrics:
            values = [float(rows[i][metric]) for i in group.members
                      if isinstance(rows[i].get(metric), (int, float)) and math.isfinite(rows[i][metric])]
            if not values:
                continue
            group.mean[metric] = statistics.fmean(values)
            group.std[metric] = statistics.stdev(values) if len(values) > 1 else 0.0
            group.n[metric] = len(values)
    return list(groups.values())


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value
