"""The job service as the studio sees it: a typed interface, so readers and tools can follow every call
from a handler to ``worker.service.JobService`` (which satisfies it; the tests check that)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from worker.views import CheckpointView, ComparisonView, DryRunView, JobView, MergedModelView, SampleView


@runtime_checkable
class StudioService(Protocol):
    def submit(
        self,
        config: dict | None = None,
        *,
        preset: str | None = None,
        overrides: dict | None = None,
        parent_id: str | None = None,
        uploads: dict[str, bytes] | None = None,
    ) -> JobView: ...

    def cancel(self, job_id: str) -> JobView: ...

    def resume(self, job_id: str) -> JobView: ...

    def clone(self, job_id: str, overrides: dict | None = None) -> JobView: ...

    def list_jobs(self, limit: int = 200) -> list[JobView]: ...

    def get_job(self, job_id: str) -> JobView: ...

    def get_metrics(self, job_id: str, since_step: int = 0) -> dict[str, list[tuple[int, float]]]: ...

    def get_samples(self, job_id: str, since_step: int = -1) -> list[SampleView]: ...

    def list_checkpoints(self, job_id: str) -> list[CheckpointView]: ...

    def adapter_zip(self, job_id: str, step: int | None = None) -> Path: ...

    def comfyui_lora(self, job_id: str, step: int | None = None) -> Path: ...

    def merged_model(self, job_id: str, step: int | None = None, *, build: bool = False) -> MergedModelView: ...

    def merged_model_zip(self, job_id: str, step: int | None = None) -> Path: ...

    def log_tail(self, job_id: str, lines: int = 200) -> str: ...

    def request_comparison(
        self, job_id: str, *, step: int | None, prompt: str, seed: int, num_samples: int = 1
    ) -> ComparisonView: ...

    def get_comparison(self, comparison_id: str) -> ComparisonView: ...

    def cancel_comparison(self, comparison_id: str) -> ComparisonView: ...

    def request_dry_run(
        self,
        config: dict | None = None,
        *,
        preset: str | None = None,
        overrides: dict | None = None,
        num_samples: int = 4,
        seed: int = 0,
    ) -> DryRunView: ...

    def get_dry_run(self, dry_run_id: str) -> DryRunView: ...


Updates = dict[Any, Any]  # what a handler returns: {component: new value or gr.update(...)}
