"""Sweeps: a grid of config keys times seeds, validated as a whole, and its eval points summarised.

A sweep is a base config (a preset or a full config, plus dotted overrides), a grid
``{dotted key: [values]}`` and a list of seeds; it expands to one ordinary job per (grid point, seed).
:func:`expand_sweep` validates every job before any exists: one bad combination (``algorithm: orw`` on
an LLM, ``beta0: -1``) refuses the whole sweep with a message naming the grid point.

:func:`summarise_sweep` turns the final eval of each job into one point per grid point (mean and std
over seeds of every eval metric) and marks, in the reward-vs-diversity and reward-vs-divergence planes,
which points are on their method's Pareto frontier (method = the job's ``algorithm``) and which are
dominated overall. The job service and ``adrpo sweep`` (local) both use these functions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import frontier as F
from . import metrics as M
from .config import NAME_PATTERN, ConfigError, JobConfig, apply_overrides, validate_config
from .kinds import get_kind

MAX_SWEEP_JOBS = 243  # 3^5: a 3x3x3 grid over 9 seeds, or five keys of three values
MAX_GRID_KEYS = 6
MAX_GRID_VALUES = 32
MAX_SEEDS = 32
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Keys a grid may not vary: the seed has its own list; a name, kind or model per grid point would mix
# different tasks in one frontier.
FORBIDDEN_GRID_KEYS = ("seed", "name", "kind", "model", "model.name_or_path")


@dataclass(frozen=True)
class SweepJob:
    """One job of a sweep: its grid values, its seed and its validated config."""

    index: int
    params: dict[str, Any]
    seed: int
    config: JobConfig

    @property
    def method(self) -> str:
        return self.config.algorithm


def planes(kind: str) -> dict[str, dict[str, str]]:
    """The two planes of the Pareto view and which way is better on each axis."""
    divergence = get_kind(kind).divergence
    return {
        "diversity": {M.REWARD_MEAN: "max", M.DIVERSITY: "max"},
        "divergence": {M.REWARD_MEAN: "max", divergence: "min"},
    }


def parse_grid_option(option: str) -> tuple[str, list[Any]]:
    """``"beta0=0.05,0.1"`` -> ``("beta0", [0.05, 0.1])``; each value is read as YAML."""
    import yaml

    key, sep, raw = option.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key) or not raw.strip():
        raise ConfigError(f"--grid {option!r}: expected KEY=V1,V2,... with a dotted key such as beta0=0.05,0.1")
    values = []
    for text in raw.split(","):
        try:
            values.append(yaml.safe_load(text) if text.strip() else "")
        except yaml.YAMLError:
            values.append(text)
    return key, values


def check_grid(grid: Any, seeds: Any) -> tuple[dict[str, list[Any]], list[int]]:
    """The grid's shape and the seeds, before any config is built; ConfigError names the field."""
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError("grid: expected a non-empty mapping of dotted keys to lists of values")
    if len(grid) > MAX_GRID_KEYS:
        raise ConfigError(f"grid: at most {MAX_GRID_KEYS} keys (got {len(grid)})")
    checked: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ConfigError(f"grid: bad key {key!r} (expected a dotted key such as beta0 or lora.rank)")
        if key in FORBIDDEN_GRID_KEYS or key.startswith("model."):
            raise ConfigError(f"grid.{key}: cannot be swept (use seeds for the seed; one sweep = one model and task)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key}: expected a non-empty list of values")
        if len(values) > MAX_GRID_VALUES:
            raise ConfigError(f"grid.{key}: at most {MAX_GRID_VALUES} values (got {len(values)})")
        if len({repr(v) for v in values}) != len(values):
            raise ConfigError(f"grid.{key}: values repeat ({values!r})")
        checked[key] = list(values)
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError("seeds: expected a non-empty list of integers")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"seeds: at most {MAX_SEEDS} (got {len(seeds)})")
    if any(not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= 2**31 - 1 for s in seeds):
        raise ConfigError(f"seeds: each must be an integer in [0, {2**31 - 1}] (got {seeds!r})")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: values repeat ({seeds!r})")
    count = len(seeds)
    for values in checked.values():
        count *= len(values)
    if count > MAX_SWEEP_JOBS:
        raise ConfigError(f"grid: {count} jobs (grid points x seeds); at most {MAX_SWEEP_JOBS}")
    return checked, list(seeds)


def job_count(grid: Mapping[str, Sequence[Any]], seeds: Sequence[int]) -> int:
    count = len(seeds)
    for values in grid.values():
        count *= len(values)
    return count


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def job_name(sweep_name: str, params: Mapping[str, Any], seed: int) -> str:
    """A readable job name such as ``digits-algorithm-adrpo-beta0-0.1-s0`` that fits NAME_PATTERN."""
    parts = [sweep_name] + [f"{key.split('.')[-1]}-{value}" for key, value in params.items()] + [f"s{seed}"]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("._-") or "sweep"
    if len(name) > 64:
        name = name[:55].rstrip("._-") + f"-s{seed}"
    return name if re.fullmatch(NAME_PATTERN, name) else f"sweep-s{seed}"


def expand_sweep(base: Mapping[str, Any], grid: Any, seeds: Any, overrides: Mapping[str, Any] | None = None,
                 name: str | None = None, extra: Mapping[str, Any] | None = None) -> list[SweepJob]:
    """Every job of the sweep, validated; raises one ConfigError listing the grid points that fail.

    ``extra`` are overrides the caller adds to every job (e.g. ``eval.on_finish: true``)."""
    checked, seeds = check_grid(grid, seeds)
    with_overrides = apply_overrides(dict(base), dict(overrides or {}))
    sweep_name = name or str(with_overrides.get("name", "sweep"))
    jobs, failures = [], []
    for params in grid_points(checked):
        for seed in seeds:
            values = {**params, **dict(extra or {}), "seed": seed, "name": job_name(sweep_name, params, seed)}
            try:
                config = validate_config(apply_overrides(with_overrides, values))
            except ConfigError as error:
                where = ", ".join(f"{k}={v!r}" for k, v in params.items())
                failures.append(f"grid point {where}: {str(error).splitlines()[0]}")
                break  # the seed does not change validity: one line per grid point
            jobs.append(SweepJob(index=len(jobs), params=params, seed=seed, config=config))
    if failures:
        shown = failures[:5] + ([f"... and {len(failures) - 5} more"] if len(failures) > 5 else [])
        raise ConfigError("grid: " + "; ".join(shown) + " (no job was created)")
    kinds = {job.config.kind for job in jobs}
    if len(kinds) > 1:
        raise ConfigError(f"grid: the jobs mix kinds {sorted(kinds)}; a sweep is one kind of model")
    return jobs


# ----------------------------------------------------------------------------------------------
# Summaries


def summarise_sweep(kind: str, grid_keys: Sequence[str], jobs: Sequence[Mapping[str, Any]],
                    reference: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One point per grid point from the jobs' final evals, with frontier flags.

    ``jobs``: dicts with ``params`` (grid values), ``seed``, ``method`` and ``eval`` (the metrics of the
    job's final eval, or None while it is missing). Returns ``{"points": [...], "reference": ...,
    "planes": ...}``; each point holds ``params``, ``method``, ``seeds`` (how many evals it averages),
    ``mean``/``std``/``n`` per metric, and per plane ``on_method_frontier``, ``on_frontier`` (overall)
    and ``dominated_by`` (indices of points that dominate it)."""
    rows = []
    for job in jobs:
        if job.get("eval"):
            rows.append({**{f"param:{k}": v for k, v in job["params"].items()}, "method": job["method"],
                         **job["eval"]})
    metric_names = sorted({name for row in rows for name, value in row.items()
                           if not name.startswith("param:") and name != "method" and isinstance(value, (int, float))})
    groups = F.aggregate(rows, ["method", *[f"param:{k}" for k in grid_keys]], metric_names)
    points = []
    for group in groups:
        params = {key.removeprefix("param:"): value for key, value in group.key if key != "method"}
        points.append({"params": params, "method": group.params["method"], "seeds": len(group.members),
                       "mean": group.mean, "std": group.std, "n": group.n})
    flat = [{"method": p["method"], **p["mean"]} for p in points]
    for plane, senses in planes(kind).items():
        fronts = F.per_method_frontiers(flat, senses)
        on_method = {i for members in fronts.values() for i in members}
        overall = set(F.frontier_indices(flat, senses))
        beaten = F.dominated_by(flat, senses)
        for index, point in enumerate(points):
            point.setdefault("frontier", {})[plane] = {
                "on_method_frontier": index in on_method, "on_frontier": index in overall,
                "dominated_by": beaten[index],
            }
    return {"points": points, "reference": dict(reference) if reference else None,
            "planes": {plane: dict(senses) for plane, senses in planes(kind).items()}}


def points_csv(summary: Mapping[str, Any], grid_keys: Sequence[str]) -> str:
    """The points as CSV: grid values, method, seeds, then mean and std of every metric."""
    import csv
    import io

    points = summary["points"]
    metrics = sorted({name for p in points for name in p["mean"]})
    out = io.StringIO()
    writer = csv.writer(out)
    header = [*grid_keys, "method", "seeds", *[f"{m} {s}" for m in metrics for s in ("mean", "std")]]
    writer.writerow(header + [f"on_frontier {plane}" for plane in summary["planes"]])
    for p in points:
        cells = [p["params"].get(k) for k in grid_keys] + [p["method"], p["seeds"]]
        for m in metrics:
            cells += [p["mean"].get(m, ""), p["std"].get(m, "")]
        cells += [p["frontier"][plane]["on_method_frontier"] for plane in summary["planes"]]
        writer.writerow(cells)
    return out.getvalue()
