"""Small helpers every tab uses: how a job is named, and how its numbers read in a table."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from worker.status import TERMINAL

POLL_SECONDS = 2.0  # how often open pages ask the service for news (the service owns the state)
EMPTY_JOBS = (
    "**No jobs yet — try the digits-even demo.** Open **Launch**, keep the *digits-even* preset, and press "
    "**Launch**: it trains a small digit generator towards even digits on the CPU in about a minute."
)


def job_label(job: Any) -> str:
    """Dropdown label: name, the id's first characters and the creation time (names need not be unique).
    No status: a label that changes while a job runs would rebuild every job picker on every poll."""
    return f"{job.name} · {job.id[:8]} · {format_time(job.created_at)}"


def job_choices(jobs: list[Any]) -> list[tuple[str, str]]:
    return [(job_label(job), job.id) for job in jobs]


def format_progress(job: Any) -> str:
    total = job.total_steps or 0
    if not total:
        return f"{job.current_step or 0}"
    percent = 100.0 * (job.current_step or 0) / total
    return f"{job.current_step or 0}/{total} ({percent:.0f}%)"


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_eta(job: Any) -> str:
    if job.status in TERMINAL:
        return "done" if job.status == "succeeded" else "—"
    return format_duration(job.eta_seconds)


def format_reward(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"


def round_reward(value: float | None, digits: int = 3) -> float | None:
    """A reward as a table cell: 0.3, not 0.30000001192092896 (float32 stored as float64)."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def format_time(moment: datetime | str | None) -> str:
    """Timestamps in UTC, to the second; the service stores UTC."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_phase(job: Any) -> str:
    """What a running job does now, e.g. "building model · builtin:tiny-lm is built once: pre-training
    step 300/1500"; empty for jobs that are not running."""
    phase = getattr(job, "phase", None)
    if not phase:
        return ""
    detail = getattr(job, "phase_detail", None)
    return f"{phase} · {detail}" if detail else phase


def format_algorithm(job: Any) -> str:
    """``adrpo β₀=0.1``: the algorithm and its base regularisation, as the Jobs table shows them."""
    beta0 = (getattr(job, "config", None) or {}).get("beta0")
    return job.algorithm if beta0 is None else f"{job.algorithm} β₀={beta0:g}"


def job_status_line(job: Any) -> str:
    """One Markdown line: status (and phase while running), progress, ETA, latest reward and, for a
    failed job, why."""
    phase = format_phase(job)
    parts = [
        f"**{job.status}**" + (f" · *{phase}*" if phase else ""),
        f"step {format_progress(job)}",
        f"ETA {format_eta(job)}",
        f"latest reward {format_reward(job.latest_reward)}",
        f"{job.kind} · {format_algorithm(job)}",
    ]
    line = f"### {job.name} `{job.id}`\n" + " · ".join(parts)
    if job.error:
        line += f"\n\n**Error:** {job.error}"
    return line


def first_prompt(config: dict[str, Any]) -> str:
    """A prompt to suggest for comparisons: the job's first eval or training prompt."""
    prompts = config.get("prompts") or {}
    for key in ("eval", "texts"):
        if prompts.get(key):
            return prompts[key][0]
    return ""
