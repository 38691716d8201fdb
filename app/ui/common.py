"""Small helpers every tab uses: how a job is named, and how its numbers read in a table."""

from __future__ import annotations

import math
from datetime import datetime, timezone
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
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_status_line(job: Any) -> str:
    """One Markdown line: status, progress, ETA, latest reward and, for a failed job, why."""
    parts = [
        f"**{job.status}**",
        f"step {format_progress(job)}",
        f"ETA {format_eta(job)}",
        f"latest reward {format_reward(job.latest_reward)}",
        f"{job.kind} · {job.algorithm}",
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
