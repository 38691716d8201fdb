"""Job detail tab: live curves, samples per step beside the step-0 reference, config, log tail and
checkpoint downloads of one job.

The page keeps what it has already drawn in a ``gr.State`` and asks the service only for metric
points and samples newer than that (``get_metrics(since_step)``), so a long run costs the same per
poll as a short one. Once a job has finished and its last points are drawn, polling stops costing
anything (the handler skips every output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd
import yaml

from adrpo_engine.kinds import DEFAULT_KIND, get_kind

from . import plots
from .common import POLL_SECONDS, TERMINAL, job_status_line

SAMPLE_COLUMNS = ["step", "role", "prompt", "seed", "reward", "text"]


@dataclass
class DetailState:
    """What the open page has fetched so far for one job."""

    job_id: str | None = None
    kind: str = DEFAULT_KIND
    points: plots.Points = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    finished: bool = False  # the job ended and everything after its end has been fetched


@dataclass
class DetailTab:
    job: gr.Dropdown
    header: gr.Markdown
    smoothing: gr.Slider
    plots: dict[str, gr.Plot]
    sample_step: gr.Dropdown
    reference_gallery: gr.Gallery
    policy_gallery: gr.Gallery
    text_samples: gr.Dataframe
    config: gr.Code
    log: gr.Textbox
    checkpoints: gr.State
    state: gr.State
    timer: gr.Timer


def sample_dicts(samples: list[Any]) -> list[dict[str, Any]]:
    """SampleView objects as plain dicts (a gr.State must be deep-copyable and small)."""
    fields = ("step", "role", "prompt", "seed", "kind", "text", "image_path", "reward")
    return [{name: getattr(sample, name, None) for name in fields} for sample in samples]


def merge_samples(known: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add newly fetched samples; a (step, role, seed, prompt) already shown is replaced, not repeated."""
    def key(sample: dict[str, Any]) -> tuple:
        return (sample["step"], sample["role"], sample["seed"], sample["prompt"], sample.get("image_path"))

    merged = {key(sample): sample for sample in known}
    merged.update((key(sample), sample) for sample in new)
    return sorted(merged.values(), key=lambda s: (s["step"], s["role"] != "reference", s["seed"]))


def sample_steps(samples: list[dict[str, Any]]) -> list[int]:
    """Steps with policy samples, newest first (the reference row is always shown)."""
    return sorted({s["step"] for s in samples if s["role"] == "policy"}, reverse=True)


def caption(sample: dict[str, Any]) -> str:
    reward = sample.get("reward")
    shown = "—" if reward is None else f"{reward:.3f}"
    return f"r={shown}"


def gallery_items(samples: list[dict[str, Any]], role: str, step: int | None) -> list[tuple[str, str]]:
    """(image path, caption) of one role at one step (the reference: its earliest step)."""
    chosen = [s for s in samples if s["role"] == role and s.get("image_path")]
    if role == "reference":
        steps = sorted({s["step"] for s in chosen})
        step = steps[0] if steps else None
    return [(s["image_path"], caption(s)) for s in chosen if s["step"] == step]


def text_frame(samples: list[dict[str, Any]], step: int | None) -> pd.DataFrame:
    """The reference rows, then the chosen step's policy rows, for text jobs."""
    rows = [s for s in samples if s["role"] == "reference" or s["step"] == step]
    return pd.DataFrame([[s["step"], s["role"], s["prompt"], s["seed"], s.get("reward"), s.get("text") or ""]
                         for s in rows], columns=SAMPLE_COLUMNS)


def build_detail_tab(service: Any) -> DetailTab:
    with gr.Row():
        job = gr.Dropdown([], label="Job", elem_id="detail-job", scale=4, allow_custom_value=True)
        smoothing = gr.Slider(0.0, 0.95, value=0.6, step=0.05, label="Smoothing (EMA) of reward and loss",
                              scale=2, elem_id="detail-smoothing")
    header = gr.Markdown("Pick a job (or launch one).", elem_id="detail-header")
    line_plots = {}
    with gr.Row():
        for panel in plots.panels_for(DEFAULT_KIND)[:3]:
            line_plots[panel.key] = _line_plot(panel.title, panel.key)
    with gr.Row():
        for panel in plots.panels_for(DEFAULT_KIND)[3:]:
            line_plots[panel.key] = _line_plot(panel.title, panel.key)
    gr.Markdown("#### Samples: the reference model (step 0, adapter off) above, the chosen step below; same seeds")
    sample_step = gr.Dropdown([], label="Step", elem_id="detail-sample-step", allow_custom_value=True)
    reference_gallery = gr.Gallery(label="Reference (step 0)", columns=8, height=340, object_fit="contain",
                                   elem_id="detail-reference-gallery", elem_classes=["pixelated"])
    policy_gallery = gr.Gallery(label="Fine-tuned", columns=8, height=340, object_fit="contain",
                                elem_id="detail-policy-gallery", elem_classes=["pixelated"])
    text_samples = gr.Dataframe(pd.DataFrame(columns=SAMPLE_COLUMNS), interactive=False, wrap=True,
                                label="Samples", visible=False, elem_id="detail-text-samples")
    gr.Markdown("#### Checkpoints (LoRA adapter as a zip)")
    checkpoints = gr.State([])
    state = gr.State(DetailState())
    timer = gr.Timer(POLL_SECONDS)

    @gr.render(inputs=[job, checkpoints], triggers=[checkpoints.change])
    def _checkpoint_buttons(job_id: str | None, steps: list[int]) -> None:
        # Rendered only when the list of checkpoints changes, so polling does not rebuild the buttons.
        if not job_id or not steps:
            gr.Markdown("No checkpoint yet.")
            return
        with gr.Row():
            for step in sorted(steps, reverse=True):
                gr.DownloadButton(f"Adapter at step {step} (.zip)", value=str(service.adapter_zip(job_id, step)),
                                  elem_classes=["checkpoint-download"], size="sm")

    with gr.Row():
        config = gr.Code("", language="yaml", label="Config", interactive=False, max_lines=22,
                         elem_id="detail-config")
        log = gr.Textbox("", label="Log (tail)", lines=18, max_lines=18, autoscroll=True, elem_id="detail-log")
    return DetailTab(job, header, smoothing, line_plots, sample_step, reference_gallery, policy_gallery,
                     text_samples, config, log, checkpoints, state, timer)


def _line_plot(title: str, key: str) -> gr.Plot:
    return gr.Plot(plots.curve_figure(plots.typed_frame([]), title), show_label=False, format="png",
                   elem_id=f"detail-plot-{key}", elem_classes=["curve"])


def wire_detail_tab(tab: DetailTab, service: Any) -> None:
    outputs = [tab.header, *tab.plots.values(), tab.sample_step, tab.reference_gallery, tab.policy_gallery,
               tab.text_samples, tab.config, tab.log, tab.checkpoints, tab.state]

    def poll(job_id: str | None, smoothing: float, step: Any, state: DetailState) -> list[Any]:
        return poll_job(service, job_id, smoothing, step, state)

    def open_job(job_id: str | None, smoothing: float, step: Any) -> list[Any]:
        # Picking a job (or a link/reload) draws it from scratch; the timer then fetches increments.
        return poll_job(service, job_id, smoothing, step, DetailState())

    def redraw(smoothing: float, state: DetailState) -> list[Any]:
        return curve_figures(state.points, state.kind, smoothing)

    def show_step(step: Any, state: DetailState) -> list[Any]:
        return sample_outputs(state, _as_step(step))

    tab.timer.tick(poll, inputs=[tab.job, tab.smoothing, tab.sample_step, tab.state], outputs=outputs,
                   show_progress="hidden")
    tab.job.change(open_job, inputs=[tab.job, tab.smoothing, tab.sample_step], outputs=outputs,
                   show_progress="hidden", api_name="job_detail")
    tab.smoothing.release(redraw, inputs=[tab.smoothing, tab.state], outputs=list(tab.plots.values()))
    tab.sample_step.input(show_step, inputs=[tab.sample_step, tab.state],
                          outputs=[tab.reference_gallery, tab.policy_gallery, tab.text_samples])


def poll_job(service: Any, job_id: str | None, smoothing: float, step: Any, state: DetailState) -> list[Any]:
    """One poll: the job's status, new points and samples, checkpoints and log; skips what did not change."""
    skip_all = [gr.skip()] * 14
    if not job_id:
        return skip_all
    switched = state.job_id != job_id
    if switched:
        state = DetailState(job_id=job_id)
    try:
        job = service.get_job(job_id)
    except LookupError:
        return [f"Job `{job_id}` does not exist (any more)."] + skip_all[1:]
    if state.finished and job.status in TERMINAL:
        return skip_all  # drawn to the end; a resumed job (queued again) is followed once more
    state.kind = job.kind
    new_points = service.get_metrics(job_id, since_step=plots.last_step(state.points))
    new_samples = sample_dicts(service.get_samples(job_id, since_step=_last_sample_step(state)))
    state.points = plots.merge_points(state.points, new_points)
    state.samples = merge_samples(state.samples, new_samples)
    checkpoint_steps = [c.step for c in service.list_checkpoints(job_id)]
    state.finished = job.status in TERMINAL  # this poll ran after the end: nothing more will come

    changed_points = switched or any(new_points.values())
    curves = curve_figures(state.points, job.kind, smoothing) if changed_points else [gr.skip()] * 5
    steps = sample_steps(state.samples)
    chosen = _as_step(step)
    if switched or new_samples or chosen not in steps:
        chosen = steps[0] if steps else None  # follow the newest samples while the job runs
    samples_out = (sample_outputs(state, chosen) if switched or new_samples
                   else [gr.skip()] * 3)
    step_choice = (gr.update(choices=[(f"step {s}", s) for s in steps], value=chosen)
                   if switched or new_samples else gr.skip())
    config_text = yaml.safe_dump(job.config, sort_keys=False) if switched else gr.skip()
    checkpoints = checkpoint_steps if (switched or checkpoint_steps != state.checkpoints) else gr.skip()
    state.checkpoints = checkpoint_steps
    return [job_status_line(job), *curves, step_choice, *samples_out, config_text,
            service.log_tail(job_id, 200), checkpoints, state]


def curve_figures(points: plots.Points, kind: str, smoothing: float) -> list[Any]:
    return [plots.curve_figure(plots.panel_frame(points, panel, smoothing), panel.title)
            for panel in plots.panels_for(kind)]


def sample_outputs(state: DetailState, step: int | None) -> list[Any]:
    """Galleries for image jobs, the table for text jobs (the other hidden)."""
    images = get_kind(state.kind).sample_kind == "image"
    if images:
        reference = gallery_items(state.samples, "reference", None)
        policy = gallery_items(state.samples, "policy", step)
        label = f"Fine-tuned at step {step}" if step is not None else "Fine-tuned"
        return [gr.update(value=reference, visible=True), gr.update(value=policy, label=label, visible=True),
                gr.update(visible=False)]
    return [gr.update(visible=False), gr.update(visible=False),
            gr.update(value=text_frame(state.samples, step), visible=True)]


def _last_sample_step(state: DetailState) -> int:
    return max((s["step"] for s in state.samples), default=-1)


def _as_step(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
