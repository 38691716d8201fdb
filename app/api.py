"""REST API under /api (FastAPI, OpenAPI at /docs). Errors are ``{"detail": "<field>: <message>"}``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from adrpo_engine.presets import PRESETS
from worker.inputs import MAX_SQL_INT, printable
from worker.service import (
    BrokerUnavailable,
    CheckpointView,
    ComparisonView,
    DryRunView,
    EvalView,
    InvalidState,
    JobNotFound,
    JobService,
    JobView,
    MergedModelView,
    SampleView,
    SubmissionError,
    SweepView,
)
from worker.settings import Settings

from .auth import basic_auth

SUBMIT_EXAMPLE = {"preset": "digits-even", "overrides": {"steps": 20, "beta0": 0.1}}
DRY_RUN_EXAMPLE = {
    "preset": "tiny-lm",
    "overrides": {
        "rewards": [
            {"name": "builtin:tiny-lm-task"},
            {"name": "reward_model", "model": "builtin:tiny-lm-rm", "weight": 0.5},
        ]
    },
    "num_samples": 4,
    "seed": 0,
}


class _Request(BaseModel):
    # An unknown key is a typo ({"overides": ...}) or a probe ({"adapter_path": "/etc"}): refuse it, and
    # take JSON types as they are (no "150" for a step).
    model_config = ConfigDict(extra="forbid", strict=True)


class ComparisonRequest(_Request):
    step: StrictInt | None = Field(
        default=None, ge=0, le=MAX_SQL_INT, description="Checkpoint step; null = the latest checkpoint."
    )
    prompt: str = Field(description="Prompt (or condition) given to both models.")
    seed: StrictInt = Field(default=0, description="Seed shared by the reference and the fine-tuned model.")
    num_samples: StrictInt = Field(default=1, description="Samples per model.")


class EvalRequest(_Request):
    steps: list[int] | None = Field(default=None, description="Checkpoint steps to evaluate; null = every checkpoint.")
    reference: bool = Field(default=True, description="Also evaluate the reference (adapter off), reported as step 0.")


SWEEP_EXAMPLE = {
    "preset": "digits-even",
    "overrides": {"steps": 100},
    "grid": {"algorithm": ["adrpo", "fixed"], "beta0": [0.05, 0.1]},
    "seeds": [0, 1, 2],
}


class CloneRequest(_Request):
    overrides: dict[str, Any] | None = Field(default=None, description="Dotted-key overrides of the cloned config.")


class PresetView(BaseModel):
    name: str
    summary: str
    demo: bool
    config: dict[str, Any]


def install_error_handlers(app: FastAPI) -> None:
    """One readable line per error, in the same shape everywhere."""

    @app.exception_handler(SubmissionError)
    async def _submission(_request: Request, error: SubmissionError) -> JSONResponse:
        return JSONResponse({"detail": printable(str(error))}, status_code=422)

    @app.exception_handler(JobNotFound)
    async def _not_found(_request: Request, error: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": printable(str(error).strip("'\""))}, status_code=404)

    @app.exception_handler(InvalidState)
    async def _conflict(_request: Request, error: InvalidState) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(BrokerUnavailable)
    async def _broker(_request: Request, error: BrokerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _request(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _request_error_line(error)}, status_code=422)


def _request_error_line(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(location) or "body"
        parts.append(f"{field}: {item.get('msg', 'invalid')}")
    return printable("; ".join(parts) or "body: invalid request")


def make_router(service: JobService, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[Depends(basic_auth(settings))])

    @router.get("/health")
    def health() -> Response:
        """The web process is up and the store answers; with an embedded worker (``adrpo serve``), its state:
        503 while it is down or restarting."""
        service.list_jobs(limit=1)
        body: dict[str, Any] = {
            "status": "ok",
            "broker": settings.broker_url.split("://")[0],
            "database": service.store.dialect,
        }
        state = service.worker_state() if service.worker_state is not None else None
        if state is not None:
            body["worker"] = state
            if state.get("state") != "running":
                body["status"] = "degraded"
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @router.get("/presets", response_model=list[PresetView])
    def presets() -> list[PresetView]:
        return [PresetView(name=p.name, summary=p.summary, demo=p.demo, config=p.config) for p in PRESETS.values()]

    @router.post("/jobs", response_model=JobView, status_code=201)
    def submit(
        body: Any = Body(
            ...,
            examples=[SUBMIT_EXAMPLE],
            description='A full job config, or {"preset": NAME, "overrides": {key: value}}.',
        ),
    ) -> JobView:
        return service.submit(**split_submission(body))

    @router.get("/jobs", response_model=list[JobView])
    def list_jobs(limit: int = Query(200, ge=1, le=10_000)) -> list[JobView]:
        return service.list_jobs(limit=limit)

    @router.get("/jobs/{job_id}", response_model=JobView)
    def get_job(job_id: str) -> JobView:
        return service.get_job(job_id)

    @router.get("/jobs/{job_id}/metrics", response_model=dict[str, list[tuple[int, float]]])
    def metrics(
        job_id: str, since: int = Query(0, ge=0, le=MAX_SQL_INT, description="Only points with step > since.")
    ) -> Response:
        # Serialised directly (orjson, a Gradio dependency): a 150k-point answer skips per-item validation.
        points = service.get_metrics(job_id, since_step=since)
        return Response(orjson.dumps(points), media_type="application/json")

    @router.get("/jobs/{job_id}/samples", response_model=list[SampleView])
    def samples(
        job_id: str, since: int = Query(-1, ge=-1, le=MAX_SQL_INT, description="Only samples with step > since.")
    ) -> list[SampleView]:
        return service.get_samples(job_id, since_step=since)

    @router.post("/jobs/{job_id}/cancel", response_model=JobView)
    def cancel(job_id: str) -> JobView:
        return service.cancel(job_id)

    @router.post("/jobs/{job_id}/resume", response_model=JobView)
    def resume(job_id: str) -> JobView:
        return service.resume(job_id)

    @router.post("/jobs/{job_id}/clone", response_model=JobView, status_code=201)
    def clone(job_id: str, body: CloneRequest | None = None) -> JobView:
        return service.clone(job_id, overrides=body.overrides if body else None)

    @router.get("/jobs/{job_id}/checkpoints", response_model=list[CheckpointView])
    def checkpoints(job_id: str) -> list[CheckpointView]:
        return service.list_checkpoints(job_id)

    @router.get("/jobs/{job_id}/adapter.zip", response_class=FileResponse)
    def adapter_zip(job_id: str, step: int | None = Query(None, ge=0, le=MAX_SQL_INT)) -> FileResponse:
        path = service.adapter_zip(job_id, step=step)
        return FileResponse(path, media_type="application/zip", filename=f"{job_id}-{path.name}")

    @router.get("/jobs/{job_id}/comfyui-lora.safetensors", response_class=FileResponse)
    def comfyui_lora(job_id: str, step: int | None = Query(None, ge=0, le=MAX_SQL_INT)) -> FileResponse:
        path = service.comfyui_lora(job_id, step=step)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    @router.get("/jobs/{job_id}/merged-model", response_model=MergedModelView)
    def merged_model(job_id: str, step: int | None = Query(None, ge=0, le=MAX_SQL_INT)) -> MergedModelView:
        return service.merged_model(job_id, step=step)

    @router.post("/jobs/{job_id}/merged-model", response_model=MergedModelView, status_code=202)
    def build_merged_model(job_id: str, step: int | None = Query(None, ge=0, le=MAX_SQL_INT)) -> MergedModelView:
        return service.merged_model(job_id, step=step, build=True)

    @router.get("/jobs/{job_id}/merged-model.zip", response_class=FileResponse)
    def merged_model_zip(job_id: str, step: int | None = Query(None, ge=0, le=MAX_SQL_INT)) -> FileResponse:
        path = service.merged_model_zip(job_id, step=step)
        return FileResponse(path, media_type="application/zip", filename=path.name)

    @router.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
    def log_tail(job_id: str, lines: int = Query(200, ge=1, le=10_000)) -> str:
        return service.log_tail(job_id, lines=lines)

    @router.post("/jobs/{job_id}/comparisons", response_model=ComparisonView, status_code=202)
    def request_comparison(job_id: str, body: ComparisonRequest) -> ComparisonView:
        return service.request_comparison(
            job_id, step=body.step, prompt=body.prompt, seed=body.seed, num_samples=body.num_samples
        )

    @router.get("/jobs/{job_id}/comparisons", response_model=list[ComparisonView])
    def list_comparisons(job_id: str) -> list[ComparisonView]:
        return service.list_comparisons(job_id)

    @router.get("/comparisons/{comparison_id}", response_model=ComparisonView)
    def get_comparison(comparison_id: str) -> ComparisonView:
        return service.get_comparison(comparison_id)

    @router.post("/comparisons/{comparison_id}/cancel", response_model=ComparisonView)
    def cancel_comparison(comparison_id: str) -> ComparisonView:
        """Queued or running: cancelled at once (a running generation's result is dropped when it ends)."""
        return service.cancel_comparison(comparison_id)

    @router.get("/rewards")
    def rewards() -> list[dict[str, Any]]:
        """The registered rewards: kind, what they need, default model, model suggestions, option schema."""
        from adrpo_engine.rewards.schema import reward_catalog

        return reward_catalog()

    @router.post("/rewards/dry-run", response_model=DryRunView, status_code=202)
    def request_dry_run(
        body: Any = Body(
            ...,
            examples=[DRY_RUN_EXAMPLE],
            description="A job submission (as POST /api/jobs takes it) plus num_samples (1-16) and seed.",
        ),
    ) -> DryRunView:
        """Score a few reference samples of the config's first prompt with each of its rewards, on a worker.
        The config is checked as a submission is (same 422 messages); poll GET /api/rewards/dry-runs/{id}."""
        if not isinstance(body, dict):
            raise SubmissionError("body", f"expected a JSON object (got {type(body).__name__})")
        body = dict(body)
        num_samples, seed = body.pop("num_samples", 4), body.pop("seed", 0)
        return service.request_dry_run(**split_submission(body), num_samples=num_samples, seed=seed)

    @router.get("/rewards/dry-runs/{dry_run_id}", response_model=DryRunView)
    def get_dry_run(dry_run_id: str) -> DryRunView:
        return service.get_dry_run(dry_run_id)

    @router.get("/rewards/dry-runs/{dry_run_id}/images/{index}", response_class=FileResponse)
    def dry_run_image(dry_run_id: str, index: int = Path_(..., ge=0, le=15)) -> FileResponse:
        return FileResponse(service.dry_run_image(dry_run_id, index), media_type="image/png")

    @router.post("/jobs/{job_id}/evals", response_model=list[EvalView], status_code=202)
    def request_evals(job_id: str, body: EvalRequest | None = None) -> list[EvalView]:
        """Evaluate checkpoints on held-out prompts with fixed noise (a worker runs it); one eval per step."""
        body = body or EvalRequest()
        return service.request_evals(job_id, steps=body.steps, reference=body.reference)

    @router.get("/jobs/{job_id}/evals", response_model=list[EvalView])
    def list_evals(job_id: str) -> list[EvalView]:
        return service.list_evals(job_id)

    @router.post("/sweeps", response_model=SweepView, status_code=201)
    def submit_sweep(
        body: Any = Body(
            ...,
            examples=[SWEEP_EXAMPLE],
            description=(
                'A grid of jobs: {"preset" or "config", "overrides", "grid": {key: [values]}, "seeds": [...], '
                '"name"}. Every job is validated before any is created.'
            ),
        ),
    ) -> SweepView:
        return service.submit_sweep(**split_sweep(body))

    @router.get("/sweeps")
    def list_sweeps(limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        return service.list_sweeps(limit=limit)

    @router.get("/sweeps/{sweep_id}", response_model=SweepView)
    def get_sweep(sweep_id: str) -> SweepView:
        """Its jobs and their states, and one point per grid point (mean and std over seeds of each eval
        metric, frontier flags per plane) once the jobs' final evals are in."""
        return service.get_sweep(sweep_id)

    @router.post("/sweeps/{sweep_id}/cancel", response_model=SweepView)
    def cancel_sweep(sweep_id: str) -> SweepView:
        return service.cancel_sweep(sweep_id)

    @router.get("/sweeps/{sweep_id}/points.csv", response_class=PlainTextResponse)
    def sweep_csv(sweep_id: str) -> PlainTextResponse:
        return PlainTextResponse(service.sweep_points_csv(sweep_id), media_type="text/csv")

    return router


SWEEP_KEYS = {"preset", "config", "overrides", "grid", "seeds", "name"}


def split_sweep(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SubmissionError("body", f"expected a JSON object (got {type(body).__name__})")
    extra = sorted(set(body) - SWEEP_KEYS)
    if extra:
        raise SubmissionError(extra[0], f"unknown key (allowed: {', '.join(sorted(SWEEP_KEYS))})")
    for required in ("grid", "seeds"):
        if required not in body:
            raise SubmissionError(required, "required field is missing")
    return {key: body.get(key) for key in SWEEP_KEYS}


def split_submission(body: Any) -> dict[str, Any]:
    """``{"preset", "overrides"}``, ``{"config": {...}}`` (optionally with overrides), or a bare config; the
    first two may carry ``"uploads": {file name: base64}`` (an audio job's clips, stored with the job)."""
    if not isinstance(body, dict):
        raise SubmissionError("body", f"expected a JSON object (got {type(body).__name__})")
    if "preset" in body:
        extra = sorted(set(body) - {"preset", "overrides", "uploads"})
        if extra:
            raise SubmissionError(extra[0], "unknown key beside 'preset' (only 'overrides' and 'uploads' are allowed)")
        return {"preset": body["preset"], "overrides": body.get("overrides"), **_uploads(body)}
    if "config" in body and set(body) <= {"config", "overrides", "uploads"}:
        return {"config": body["config"], "overrides": body.get("overrides"), **_uploads(body)}
    return {"config": body}


def _uploads(body: dict[str, Any]) -> dict[str, Any]:
    uploads = body.get("uploads")
    if uploads is None:
        return {}
    if not isinstance(uploads, dict):
        raise SubmissionError("uploads", "expected a mapping of file names to base64 contents")
    decoded = {}
    for name, text in uploads.items():
        try:
            decoded[name] = base64.b64decode(text, validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise SubmissionError(f"uploads.{printable(name)}", "not base64 text") from None
    return {"uploads": decoded}
