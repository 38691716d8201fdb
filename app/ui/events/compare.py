"""Compare tab events: pick a job (its checkpoints and one of its own prompts), request a comparison,
poll it until done. A result always belongs to the job picked now: picking another job clears it."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from ..common import first_prompt
from ..compare import (
    LATEST,
    TEXT_COLUMNS,
    CompareTab,
    comparison_outputs,
    comparison_summary,
)
from ..service import StudioService, Updates
from . import unchanged


def job_prompt(service: StudioService, job_id: str, config: dict[str, Any]) -> str:
    """A prompt of the job's own to start from: its config's first prompt, else the first prompt of its
    logged samples (jobs on a dataset or a prompt file have none in the config)."""
    prompt = first_prompt(config)
    if prompt:
        return prompt
    samples = service.get_samples(job_id, since_step=-1)
    return samples[0].prompt if samples else ""


def cleared(tab: CompareTab) -> Updates:
    return {
        tab.status: "",
        tab.reference: gr.update(value=[], visible=True),
        tab.policy: gr.update(value=[], visible=True),
        tab.texts: gr.update(value=pd.DataFrame(columns=TEXT_COLUMNS), visible=False),
        tab.clip: gr.update(value="", visible=False),
        tab.comparison_id: None,
        tab.timer: gr.Timer(active=False),
    }


def pick_job(service: StudioService, tab: CompareTab, job_id: str | None) -> Updates:
    if not job_id:
        return {**cleared(tab), tab.checkpoint: gr.update(choices=[("latest", LATEST)], value=LATEST)}
    try:
        job = service.get_job(job_id)
    except LookupError:
        return unchanged(tab.status)
    steps = sorted((c.step for c in service.list_checkpoints(job_id)), reverse=True)
    choices = [("latest", LATEST)] + [(f"step {s}", s) for s in steps]
    return {
        **cleared(tab),
        tab.checkpoint: gr.update(choices=choices, value=LATEST),
        tab.prompt: job_prompt(service, job_id, job.config),
    }


def request(
    service: StudioService, tab: CompareTab, job_id: str | None, step: Any, prompt: str, seed: Any, count: Any
) -> Updates:
    if not job_id:
        return {tab.status: "Pick a job first."}
    if not (prompt or "").strip():
        return {tab.status: "Write a prompt first."}
    chosen = None if step in (None, LATEST, str(LATEST)) else int(step)
    try:
        comparison = service.request_comparison(
            job_id, step=chosen, prompt=prompt.strip(), seed=int(seed or 0), num_samples=int(count or 1)
        )
    except (LookupError, ValueError) as error:
        return {tab.status: f"**Could not compare:** {error}", tab.timer: gr.Timer(active=False)}
    return {
        **cleared(tab),
        tab.status: comparison_summary(comparison),
        tab.comparison_id: comparison.id,
        tab.timer: gr.Timer(active=True),
    }


def poll(service: StudioService, tab: CompareTab, comparison_id: str | None, job_id: str | None) -> Updates:
    if not comparison_id:
        return {tab.timer: gr.Timer(active=False)}
    comparison = service.get_comparison(comparison_id)
    if comparison.job_id != job_id:  # another job was picked meanwhile: never show this result under it
        return {tab.timer: gr.Timer(active=False)}
    if comparison.status not in ("succeeded", "failed", "cancelled"):
        return {tab.status: comparison_summary(comparison)}
    status, reference, policy, texts, clip = comparison_outputs(comparison)
    return {
        tab.status: status,
        tab.reference: reference,
        tab.policy: policy,
        tab.texts: texts,
        tab.clip: clip,
        tab.timer: gr.Timer(active=False),
    }


def cancel(service: StudioService, tab: CompareTab, comparison_id: str | None) -> Updates:
    if not comparison_id:
        return {tab.status: "Nothing to cancel."}
    try:
        comparison = service.cancel_comparison(comparison_id)
    except (LookupError, ValueError) as error:
        return {tab.status: f"**Could not cancel:** {error}"}
    return {tab.status: comparison_summary(comparison), tab.timer: gr.Timer(active=False)}


def wire_compare_tab(tab: CompareTab, service: StudioService) -> None:
    # the clip last: the API's earlier outputs keep their places
    results = [tab.status, tab.reference, tab.policy, tab.texts, tab.comparison_id, tab.timer, tab.clip]
    queue = {"concurrency_id": "compare", "concurrency_limit": 1}
    tab.job.change(
        lambda job_id: pick_job(service, tab, job_id),
        inputs=tab.job,
        outputs=[*results, tab.checkpoint, tab.prompt],
        **queue,
    )
    tab.run.click(
        lambda *args: request(service, tab, *args),
        inputs=[tab.job, tab.checkpoint, tab.prompt, tab.seed, tab.num_samples],
        outputs=results,
        api_name="request_comparison",
        **queue,
    )
    tab.cancel.click(
        lambda comparison_id: cancel(service, tab, comparison_id),
        inputs=tab.comparison_id,
        outputs=results,
        api_name="cancel_comparison",
        **queue,
    )
    tab.timer.tick(
        lambda comparison_id, job_id: poll(service, tab, comparison_id, job_id),
        inputs=[tab.comparison_id, tab.job],
        outputs=results,
        show_progress="hidden",
        api_name="comparison_status",
        **queue,
    )
