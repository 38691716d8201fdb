"""One job config on N processes through `adrpo train` (accelerate launch), for the GPU checks.

``run_job`` writes the config (with ``resources.processes`` and, for ``fsdp``, an accelerate FSDP2 config), runs
``python -m adrpo_engine.cli train`` and returns the run's metric rows; ``summary`` is the line the checks print:
median step time after the first step, images or completions per second of the whole job, and the peak GPU memory
the trainer logged (``gpu/peak_gib``: the largest over the job's GPUs).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
FSDP_CONFIG = {"distributed_type": "FSDP", "fsdp_config": {"fsdp_version": 2, "fsdp_reshard_after_forward": True}}


def run_job(config: dict[str, Any], run_dir: Path, processes: int, fsdp: bool = False) -> list[dict[str, Any]]:
    """Train ``config`` on ``processes`` processes (FSDP2-sharded frozen weights with ``fsdp``); its metric rows."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    resources: dict[str, Any] = {"processes": processes}
    if fsdp:
        accelerate = run_dir.parent / f"{run_dir.name}-accelerate.yaml"
        accelerate.write_text(yaml.safe_dump({**FSDP_CONFIG, "num_processes": processes}))
        resources["accelerate_config"] = str(accelerate)
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump({**config, "resources": resources}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "adrpo_engine.cli", "train", "-c", str(path), "-o", str(run_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{processes}-process run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def summary(label: str, rows: list[dict[str, Any]], per_step: int, unit: str) -> tuple[str, float]:
    """``(line, median step seconds)`` of the rows after the first (which warms up kernels)."""
    timed = rows[1:] or rows
    step_s = statistics.median(row["step_time"] for row in timed)
    peaks = [row["gpu/peak_gib"] for row in timed if "gpu/peak_gib" in row]
    memory = f", peak GPU memory {max(peaks):.1f} GiB per GPU" if peaks else ""
    return f"{label:<14} step time median {step_s:.2f} s, {per_step / step_s:.1f} {unit}/s{memory}", step_s


def compare_processes(
    data: dict[str, Any], workdir: Path, processes: int, fsdp: bool, per_step: int, unit: str
) -> None:
    """Print the job on 1 process, on ``processes`` (data parallel) and, with ``fsdp``, FSDP2-sharded."""
    one_line, one_s = summary("1 process", run_job(data, workdir / "p1", 1), per_step, unit)
    print(one_line, flush=True)
    variants = [(f"{processes} processes", False)] + ([(f"{processes} + FSDP2", True)] if fsdp else [])
    for label, sharded in variants:
        rows = run_job(data, workdir / label.replace(" ", "").replace("+", "-"), processes, sharded)
        line, step_s = summary(label, rows, per_step, unit)
        print(f"{line}; RATIO 1-process / this step time = {one_s / step_s:.2f}", flush=True)
