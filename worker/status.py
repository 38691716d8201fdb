"""The states of a job (and of a comparison, which uses the first four): one enum for the worker, the
API and the studio. Members are strings, so they compare equal to the values stored in the database."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # jobs only: a comparison is never cancelled

    @property
    def terminal(self) -> bool:
        """True once nothing will change any more (no worker holds it, no message will run it)."""
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
