"""``adrpo sweep`` without a job service: train the sweep's jobs one after another, evaluate each final
checkpoint (and the reference), write the summary.

Layout of the output directory::

    sweep.json     the spec, every job (grid values, seed, run dir, final eval) and the summary
    points.csv     one row per grid point: mean and std over seeds of each eval metric, frontier flags
    frontier.png   reward vs diversity and reward vs divergence, one point per grid point
    <job name>/    each job's ordinary run directory, plus eval.json (its final and reference evals)

Re-running the same command resumes: finished jobs are found by their checkpoint and eval.json.
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
    (out_dir / "sweep.json").write_text(json.dumps(record, indent=1))
    (out_dir / "points.csv").write_text(points_csv(summary, grid_keys))
    from .sweep_plot import save_sweep_figure

    save_sweep_figure(summary, out_dir / "frontier.png", title=str(spec.get("title", "")))
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
