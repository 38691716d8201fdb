"""``adrpo sweep`` without a job service: train the sweep's jobs one after another, evaluate each final
checkpoint (and the reference), write the summary.

Layout of the output directory::

    sweep.json     the spec, every job (grid values, seed, run dir, final eval) and the summary
    points.csv     one row per grid point: mean and std over seeds of each eval metric, frontier flags
    frontier.png   reward vs diversity and reward vs divergence, one point per grid point
    <job name>/    each job's ordinary run directory, plus eval.json (its final and reference evals)

Re-running the same command resumes: finished jobs are found by their checkpoint and eval.json.
:func:`merge_sweep_records` joins the records of several sweeps of one base (``scripts/merge_sweeps.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .checkpoints import latest_checkpoint
from .config import JobConfig
from .evaluation import EvalPoint, evaluate
from .progress import NullSink, ProgressSink
from .sweep import SweepJob, points_csv, summarise_sweep

EVAL_FILE = "eval.json"


def reference_key(config: JobConfig) -> str:
    """What the reference eval depends on: the model, the rewards, the sampling and the eval settings
    (not beta0, the algorithm, lr or the seed), so one reference eval serves the whole sweep."""
    data = config.model_dump(mode="json")
    keep = {key: data[key] for key in ("kind", "model", "rewards", "prompts", "llm", "flow", "eval")}
    keep["eval"] = {k: v for k, v in keep["eval"].items() if k not in ("every_checkpoint", "on_finish")}
    return json.dumps(keep, sort_keys=True)


def run_sweep(
    jobs: Sequence[SweepJob],
    out_dir: Path,
    grid_keys: Sequence[str],
    spec: Mapping[str, Any],
    sink_for: Callable[[SweepJob], ProgressSink] | None = None,
    on_done: Callable[[SweepJob, EvalPoint, float], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate every job in order; returns (and writes) the sweep record."""
    from .runner import train

    out_dir.mkdir(parents=True, exist_ok=True)
    references: dict[str, dict[str, Any]] = {}
    records = []
    for job in jobs:
        run_dir = out_dir / job.config.name
        started = time.perf_counter()
        final, reference = _cached_eval(run_dir)
        if final is None:
            train(job.config, run_dir, sink_for(job) if sink_for else NullSink(), resume=True)
            newest = latest_checkpoint(run_dir)
            if newest is None:
                raise RuntimeError(f"sweep job {job.config.name} finished without a checkpoint in {run_dir}")
            step, path = newest
            key = reference_key(job.config)
            wanted = [(step, path)] if key in references else [(0, None), (step, path)]
            points = evaluate(job.config, wanted)
            if key not in references:
                references[key] = points[0].to_dict()
            final, reference = points[-1].to_dict(), references[key]
            (run_dir / EVAL_FILE).write_text(json.dumps({"final": final, "reference": reference}, indent=1))
        references.setdefault(reference_key(job.config), reference)
        records.append(
            {
                "name": job.config.name,
                "params": job.params,
                "seed": job.seed,
                "method": job.method,
                "run_dir": job.config.name,
                "eval": final["metrics"],
                "counts": final["counts"],
                "step": final["step"],
                "held_out": final["held_out"],
            }
        )
        if on_done:
            on_done(job, EvalPoint(**final), time.perf_counter() - started)
    kind = jobs[0].config.kind
    first_reference = next(iter(references.values()))
    summary = summarise_sweep(kind, grid_keys, records, first_reference["metrics"])
    record = {"spec": dict(spec), "kind": kind, "jobs": records, "reference": first_reference, "summary": summary}
    write_sweep_record(record, out_dir, grid_keys)
    return record


def _cached_eval(run_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A finished job's evals (its run directory has eval.json for its latest checkpoint)."""
    path = run_dir / EVAL_FILE
    found = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    if not path.is_file() or found is None:
        return None, None
    data = json.loads(path.read_text())
    if data["final"]["step"] != found[0]:
        return None, None
    return data["final"], data["reference"]


def merge_sweep_records(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One sweep record from several ``sweep.json`` records of the same base and kind, summarised again.

    For grids the product cannot express as one product of keys, e.g. a symmetric clip range
    ``a_min = -c, a_max = c``: one sweep per c (``--grid a_max=c --set a_min=-c``), then merged. An
    override whose value differs between the records (here ``a_min``) becomes a grid key of the merged
    summary, before the records' own grid keys. Refused (ValueError): records of different bases or
    kinds, different grid keys, a reference eval that differs (the points would not share an origin),
    the same job in two records, or an override set in some records only."""
    if len(records) < 2:
        raise ValueError("merge needs at least two sweep records")
    first = records[0]
    for record in records[1:]:
        if record["kind"] != first["kind"]:
            raise ValueError(f"the sweeps are of different kinds: {first['kind']!r} vs {record['kind']!r}")
        if record["spec"].get("base") != first["spec"].get("base"):
            raise ValueError(
                f"the sweeps have different bases: {first['spec'].get('base')!r} vs {record['spec'].get('base')!r}"
            )
        if list(record["spec"]["grid"]) != list(first["spec"]["grid"]):
            raise ValueError(
                f"the sweeps have different grid keys: {list(first['spec']['grid'])} vs {list(record['spec']['grid'])}"
            )
        if record["reference"]["metrics"] != first["reference"]["metrics"]:
            raise ValueError("the sweeps' reference evals differ (different model, rewards, prompts or eval settings)")
    override_keys = {key for record in records for key in record["spec"].get("overrides", {})}
    varying = []
    for key in sorted(override_keys):
        if any(key not in record["spec"].get("overrides", {}) for record in records):
            raise ValueError(f"override {key!r} is set in some of the sweeps only")
        values = [json.dumps(record["spec"]["overrides"][key], sort_keys=True) for record in records]
        if len(set(values)) > 1:
            varying.append(key)
    grid_keys = varying + list(first["spec"]["grid"])
    jobs, names = [], set()
    for record in records:
        for job in record["jobs"]:
            if job["name"] in names:
                raise ValueError(f"job {job['name']!r} is in two of the sweeps")
            names.add(job["name"])
            extra = {key: record["spec"]["overrides"][key] for key in varying}
            jobs.append({**job, "params": {**extra, **job["params"]}})
    grid: dict[str, list[Any]] = {}
    for job in jobs:
        for key in grid_keys:
            if job["params"][key] not in grid.setdefault(key, []):
                grid[key].append(job["params"][key])
    spec = {
        "merged": [dict(record["spec"]) for record in records],
        "base": first["spec"].get("base"),
        "grid": grid,
        "title": f"{first['spec'].get('base')}: "
        + ", ".join(f"{k} in {v}" for k, v in grid.items())
        + " (merged sweeps)",
    }
    summary = summarise_sweep(first["kind"], grid_keys, jobs, first["reference"]["metrics"])
    return {"spec": spec, "kind": first["kind"], "jobs": jobs, "reference": first["reference"], "summary": summary}


def write_sweep_record(record: Mapping[str, Any], out_dir: Path, grid_keys: Sequence[str]) -> None:
    """sweep.json, points.csv and frontier.png of a sweep record."""
    from .sweep_plot import save_sweep_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps(record, indent=1))
    (out_dir / "points.csv").write_text(points_csv(record["summary"], grid_keys))
    save_sweep_figure(record["summary"], out_dir / "frontier.png", title=str(record["spec"].get("title", "")))
