"""Job detail tab events: open a job, poll it, redraw on a smoothing change, pick a sample step.

Every event of this tab runs in one queue (``CONCURRENCY``, one at a time, in order): a poll that
started for the previous job can no longer finish after the newly opened job has been drawn and
paint the old job's body under the new job's name. Opening a job first blanks the body (a fast
step), then draws the job.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd
import yaml

from .. import plots
from ..common import TERMINAL, job_status_line
from ..detail import (
    SAMPLE_COLUMNS,
    DetailState,
    DetailTab,
    as_step,
    curve_figures,
    last_sample_step,
    merge_samples,
    sample_dicts,
    sample_outputs,
    sample_steps,
    shown_step,
)
from ..service import StudioService, Updates
from ..share import NEWEST, MergeDisplay, ShareBox, checkpoint_choices, merge_display, push_message
from . import unchanged

CONCURRENCY = "detail"  # one queue for every event that writes this tab's body
LOG_LINES = 200
# The address bar names the job on show, so a reload or a copied link comes back to it (read by on_load).
SHOW_JOB_IN_ADDRESS = """(jobId) => {
    const url = new URL(window.location.href);
    if (jobId) { url.searchParams.set("job", jobId); } else { url.searchParams.delete("job"); }
    window.history.replaceState(window.history.state, "", url);
    return [];
}"""


def wire_detail_tab(tab: DetailTab, service: StudioService) -> None:
    body = body_components(tab)
    inputs = [tab.job, tab.smoothing, tab.sample_step, tab.state]
    queue = {"concurrency_id": CONCURRENCY, "concurrency_limit": 1, "show_progress": "hidden"}

    tab.timer.tick(lambda *args: poll_job(service, tab, *args), inputs=inputs, outputs=body, **queue)
    tab.job.change(lambda job_id: blank_body(tab, job_id), inputs=tab.job, outputs=body, **queue).then(
        lambda job_id, smoothing, step: poll_job(service, tab, job_id, smoothing, step, DetailState()),
        inputs=inputs[:3],
        outputs=body,
        api_name="job_detail",
        **queue,
    )
    tab.job.change(None, inputs=tab.job, js=SHOW_JOB_IN_ADDRESS, queue=False, show_progress="hidden")
    tab.smoothing.release(
        lambda smoothing, state: dict(
            zip(tab.plots.values(), curve_figures(state.points, state.kind, smoothing, state.job_id))
        ),
        inputs=[tab.smoothing, tab.state],
        outputs=list(tab.plots.values()),
        **queue,
    )
    tab.sample_step.input(
        lambda step, state: sample_updates(tab, state, as_step(step)),
        inputs=[tab.sample_step, tab.state],
        outputs=body,
        **queue,
    )
    wire_share_box(tab, service)


def wire_share_box(tab: DetailTab, service: StudioService) -> None:
    share = tab.share
    tab.checkpoints.change(
        lambda steps: gr.update(choices=checkpoint_choices(steps), value=NEWEST),
        inputs=tab.checkpoints,
        outputs=share.checkpoint,
        show_progress="hidden",
    )
    # The token box is emptied by the same event that used it; the push is no API endpoint of its own.
    share.push.click(
        lambda job_id, repo, checkpoint, private, token: {
            share.result: push_message(service, job_id, repo, checkpoint, private, token),
            share.token: "",
        },
        inputs=[tab.job, share.repo, share.checkpoint, share.private, share.token],
        outputs=[share.result, share.token],
        api_visibility="private",
        concurrency_id="hub-push",
        concurrency_limit=1,
    )
    merge_outputs = [share.merge_status, share.merge_download, share.merge_timer]
    share.merge.click(
        lambda job_id, checkpoint: merge_updates(share, merge_display(service, job_id, checkpoint, build=True)),
        inputs=[tab.job, share.checkpoint],
        outputs=merge_outputs,
        api_visibility="private",
    )
    share.merge_timer.tick(
        lambda job_id, checkpoint: merge_updates(share, merge_display(service, job_id, checkpoint, build=False)),
        inputs=[tab.job, share.checkpoint],
        outputs=merge_outputs,
        show_progress="hidden",
        api_visibility="private",
    )
    # Another job or step: the row forgets the previous one's merge (the button asks again, cheaply).
    for changed in (tab.job, share.checkpoint):
        changed.change(
            lambda: merge_updates(share, MergeDisplay("")),
            outputs=merge_outputs,
            show_progress="hidden",
            api_visibility="private",
        )


def merge_updates(share: ShareBox, shown: MergeDisplay) -> Updates:
    download = gr.update(value=shown.path, visible=True) if shown.path else gr.update(value=None, visible=False)
    return {
        share.merge_status: shown.text,
        share.merge_download: download,
        share.merge_timer: gr.Timer(active=shown.polling),
    }


def body_components(tab: DetailTab) -> list[Any]:
    return [
        tab.header,
        *tab.plots.values(),
        tab.sample_step,
        tab.reference_gallery,
        tab.policy_gallery,
        tab.text_samples,
        tab.config,
        tab.log,
        tab.checkpoints,
        tab.state,
        tab.audio_samples,  # last: the API's earlier outputs keep their places
    ]


def blank_body(tab: DetailTab, job_id: str | None) -> Updates:
    """The moment another job is picked: its name in the header and an empty body, never the previous
    job's curves and samples under the new job's name."""
    if not job_id:
        return unchanged(tab.state)
    empty = curve_figures({}, "flow", 0.0)
    return {
        tab.header: f"### Loading job `{job_id}`…",
        **dict(zip(tab.plots.values(), empty)),
        tab.sample_step: gr.update(choices=[], value=None),
        tab.reference_gallery: [],
        tab.policy_gallery: [],
        tab.text_samples: gr.update(value=pd.DataFrame(columns=SAMPLE_COLUMNS)),
        tab.audio_samples: "",
        tab.config: "",
        tab.log: "",
        tab.checkpoints: [],
        tab.state: DetailState(job_id=None),
    }


def sample_updates(tab: DetailTab, state: DetailState, step: int | None) -> Updates:
    reference, policy, table, audio = sample_outputs(state, step)
    return {
        tab.reference_gallery: reference,
        tab.policy_gallery: policy,
        tab.text_samples: table,
        tab.audio_samples: audio,
    }


def poll_job(
    service: StudioService, tab: DetailTab, job_id: str | None, smoothing: float, step: Any, state: DetailState
) -> Updates:
    """One poll: the job's status, new points and samples, checkpoints and log; only what changed."""
    if not job_id:
        return unchanged(tab.state)
    switched = state.job_id != job_id
    if switched:
        state = DetailState(job_id=job_id)
    try:
        job = service.get_job(job_id)
    except LookupError:
        return {tab.header: f"Job `{job_id}` does not exist (any more)."}
    if state.finished and job.status in TERMINAL:
        return unchanged(tab.state)  # drawn to the end; a resumed job (queued again) is followed once more
    state.kind = job.kind
    new_points = service.get_metrics(job_id, since_step=plots.last_step(state.points))
    new_samples = sample_dicts(service.get_samples(job_id, since_step=last_sample_step(state)))
    state.points = plots.merge_points(state.points, new_points)
    newest_before = next(iter(sample_steps(state.samples)), None)
    state.samples = merge_samples(state.samples, new_samples)
    checkpoint_steps = [c.step for c in service.list_checkpoints(job_id)]
    state.finished = job.status in TERMINAL  # this poll ran after the end: nothing more will come

    updates: Updates = {tab.state: state}
    header = job_status_line(job)
    if switched or header != state.header:
        updates[tab.header] = state.header = header
    log = service.log_tail(job_id, LOG_LINES)
    if switched or log != state.log:
        updates[tab.log] = state.log = log
    if switched or any(new_points.values()):
        updates.update(zip(tab.plots.values(), curve_figures(state.points, job.kind, smoothing, job_id)))
    if switched or new_samples:
        steps = sample_steps(state.samples)
        chosen = shown_step(steps, as_step(step), None if switched else newest_before)
        updates[tab.sample_step] = gr.update(choices=[(f"step {s}", s) for s in steps], value=chosen)
        updates.update(sample_updates(tab, state, chosen))
    if switched:
        updates[tab.config] = yaml.safe_dump(job.config, sort_keys=False)
    if switched or checkpoint_steps != state.checkpoints:
        updates[tab.checkpoints] = checkpoint_steps
    state.checkpoints = checkpoint_steps
    return updates
