"""The job store's tables (SQLAlchemy 2). Alembic migrations in ``migrations/`` create them.

Metrics are one row per (job, metric name, step): the primary key is that triple, so a resumed job can
never hold a point twice. On SQLite the table is WITHOUT ROWID (clustered on the key) and on PostgreSQL
the key INCLUDEs the value, so one metric's points since step k are one contiguous index range.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .status import JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    algorithm: Mapped[str] = mapped_column(String(16))
    preset: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer)
    latest_reward: Mapped[float | None] = mapped_column(Float)
    seconds_per_step: Mapped[float | None] = mapped_column(Float)
    # What a running job does now (adrpo_engine.progress phase names) and a readable detail with progress.
    phase: Mapped[str | None] = mapped_column(String(32))
    phase_detail: Mapped[str | None] = mapped_column(String(256))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[str | None] = mapped_column(String(32))
    sweep_id: Mapped[str | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"), index=True)


class Metric(Base):
    __tablename__ = "metrics"
    # PostgreSQL: the key carries the value too (INCLUDE), so a metric's series is an index-only scan.
    __table_args__ = (
        PrimaryKeyConstraint("job_id", "name", "step", name="metrics_pkey", postgresql_include=["value"]),
        {"sqlite_with_rowid": False},
    )

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_checkpoints_job_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(512))  # relative to the job's run directory
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comparison(Base):
    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int | None] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    num_samples: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # Owner and heartbeat while running (migration 0004): the watchdog re-queues a comparison whose
    # worker died, like a job, and fails it after MAX_CLAIM_ATTEMPTS.
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SampleRow(Base):
    """A logged training sample (comparison_id NULL) or one output of a comparison."""

    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_job_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    comparison_id: Mapped[str | None] = mapped_column(ForeignKey("comparisons.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    text: Mapped[str | None] = mapped_column(Text)
    # The sample's media file, relative to the run directory: its image, or for kind "audio" the prompt's clip.
    image_path: Mapped[str | None] = mapped_column(String(1024))
    reward: Mapped[float | None] = mapped_column(Float)


class Sweep(Base):
    """A named grid of ordinary jobs (``jobs.sweep_id``); ``members`` records each job's grid values and seed."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    preset: Mapped[str | None] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]]  # {"grid": {...}, "seeds": [...], "overrides": {...}}
    members: Mapped[dict[str, Any]]  # {"jobs": [{"job_id", "params", "seed"}, ...]}
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Evaluation(Base):
    """One eval of a job's checkpoint (``step``; 0 = the reference, adapter off): at most one per (job, step)."""

    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_evaluations_job_step"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str] = mapped_column(String(16), default="request")  # request | checkpoint | finish
    prompts: Mapped[int | None] = mapped_column(Integer)
    samples_per_prompt: Mapped[int | None] = mapped_column(Integer)
    held_out: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    # Stamped by the worker's heartbeat while running (migration 0007): the watchdog re-queues an eval
    # whose worker stopped stamping, and fails it after MAX_CLAIM_ATTEMPTS deaths.
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class EvalMetric(Base):
    """One metric of one eval with the number of values it averages; unique per (eval, name)."""

    __tablename__ = "eval_metrics"
    __table_args__ = (PrimaryKeyConstraint("eval_id", "name", name="eval_metrics_pkey"),)

    eval_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)


class DryRun(Base):
    """A reward dry run: reference samples of a config's first prompt scored by each of its rewards
    (migration 0006). Nothing is trained; the config was checked as a submission is."""

    __tablename__ = "dry_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    config: Mapped[dict[str, Any]]
    num_samples: Mapped[int] = mapped_column(Integer, default=4)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # adrpo_engine.dry_run.DryRunResult.to_dict()
    error: Mapped[str | None] = mapped_column(Text)
    # Owner and heartbeat while running: the watchdog fails a dry run whose worker stopped answering.
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
