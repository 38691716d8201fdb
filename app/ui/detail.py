"""Job detail tab: live curves, samples per step beside the step-0 reference, config, log tail,
checkpoint downloads and the Hub push of one job.

The page keeps what it has already drawn in a ``gr.State`` and asks the service only for metric
points and samples newer than that (``get_metrics(since_step)``), so a long run costs the same per
poll as a short one. Once a job has finished and its last points are drawn, polling stops costing
anything (the handler skips every output). The events are wired in ``app/ui/events/detail.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from adrpo_engine.kinds import DEFAULT_KIND, get_kind
from adrpo_engine.progress import AUDIO_SAMPLE, IMAGE_SAMPLE

from . import plots
from .audio_views import audio_samples_html
from .cards import sample_card
from .common import POLL_SECONDS, round_reward
from .service import StudioService
from .share import ShareBox, build_share_box

SAMPLE_COLUMNS = ["step", "role", "prompt", "seed", "reward", "text"]
SAMPLE_COLUMN_WIDTHS: list[str | int] = ["6%", "9%", "25%", "6%", "8%", "46%"]


@dataclass
class DetailState:
    """What the open page has fetched so far for one job."""

    job_id: str | None = None
    kind: str = DEFAULT_KIND
    points: plots.Points = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    header: str = ""  # the last header and log sent: unchanged ones are not sent again
    log: str = ""
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
    audio_samples: gr.HTML
    config: gr.Code
    log: gr.Textbox
    checkpoints: gr.State
    share: ShareBox
    state: gr.State
    timer: gr.Timer


def sample_dicts(samples: list[Any]) -> list[dict[str, Any]]:
    """SampleView objects as plain dicts (a gr.State must be deep-copyable and small)."""
    fields = ("step", "role", "prompt", "seed", "kind", "text", "image_path", "audio_path", "reward")
    return [{name: getattr(sample, name, None) for name in fields} for sample in samples]


def merge_samples(known: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add newly fetched samples; a (step, role, seed, prompt) already shown is replaced, not repeated."""

    def key(sample: dict[str, Any]) -> tuple:
        # the text too: several completions of one prompt at one step (llm.eval_samples) are several samples
        return (
            sample["step"],
            sample["role"],
            sample["seed"],
            sample["prompt"],
            sample.get("image_path"),
            sample.get("text"),
        )

    merged = {key(sample): sample for sample in known}
    merged.update((key(sample), sample) for sample in new)
    return sorted(merged.values(), key=lambda s: (s["step"], s["role"] != "reference", s["seed"]))


def sample_steps(samples: list[dict[str, Any]]) -> list[int]:
    """Steps with policy samples, newest first (the reference row is always shown)."""
    return sorted({s["step"] for s in samples if s["role"] == "policy"}, reverse=True)


def shown_step(steps: list[int], chosen: int | None, newest_before: int | None) -> int | None:
    """The sample step to show after a poll (``steps`` newest first): the newest, following a running job,
    unless an older step was picked by hand and still exists. ``newest_before``: the newest step the page
    knew before this poll (None: a job just opened)."""
    if chosen in steps and newest_before is not None and chosen != newest_before:
        return chosen
    return steps[0] if steps else None


def caption(sample: dict[str, Any]) -> str:
    """What is written under a sample image: what it shows (a built-in classifier's class, when the
    model has one) and its reward."""
    reward = sample.get("reward")
    shown = "—" if reward is None else f"{reward:.3f}"
    note = sample.get("text")
    return f"{note}\nreward {shown}" if note else f"reward {shown}"


def gallery_items(samples: list[dict[str, Any]], role: str, step: int | None) -> list[tuple[str, None]]:
    """(card image, None) of one role at one step (the reference: its earliest step). The card has the
    caption drawn under the image (see ``cards``): Gradio's own caption would cover the image again."""
    chosen = [s for s in samples if s["role"] == role and s.get("image_path")]
    if role == "reference":
        steps = sorted({s["step"] for s in chosen})
        step = steps[0] if steps else None
    return [(sample_card(s["image_path"], caption(s)), None) for s in chosen if s["step"] == step]


def text_frame(samples: list[dict[str, Any]], step: int | None) -> pd.DataFrame:
    """The reference rows, then the chosen step's policy rows, for text jobs."""
    rows = [s for s in samples if s["role"] == "reference" or s["step"] == step]
    return pd.DataFrame(
        [
            [s["step"], s["role"], s["prompt"], s["seed"], round_reward(s.get("reward")), s.get("text") or ""]
            for s in rows
        ],
        columns=SAMPLE_COLUMNS,
    )


def build_detail_tab(service: StudioService) -> DetailTab:
    with gr.Row():
        job = gr.Dropdown([], label="Job", elem_id="detail-job", scale=4, allow_custom_value=True)
        smoothing = gr.Slider(
            0.0,
            0.95,
            value=0.6,
            step=0.05,
            label="Smoothing (EMA) of reward and loss",
            scale=2,
            elem_id="detail-smoothing",
        )
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
    reference_gallery = gr.Gallery(
        label="Reference (step 0)",
        columns=8,
        height="auto",
        object_fit="contain",
        elem_id="detail-reference-gallery",
        elem_classes=["sample-cards"],
    )
    policy_gallery = gr.Gallery(
        label="Fine-tuned",
        columns=8,
        height="auto",
        object_fit="contain",
        elem_id="detail-policy-gallery",
        elem_classes=["sample-cards"],
    )
    text_samples = gr.Dataframe(
        pd.DataFrame(columns=SAMPLE_COLUMNS),
        interactive=False,
        wrap=True,
        column_widths=SAMPLE_COLUMN_WIDTHS,
        label="Samples",
        visible=False,
        elem_id="detail-text-samples",
    )
    audio_samples = gr.HTML("", visible=False, elem_id="detail-audio-samples")
    gr.Markdown("#### Checkpoints (LoRA adapter as a zip)")
    checkpoints = gr.State([])
    state = gr.State(DetailState())
    timer = gr.Timer(POLL_SECONDS, active=False)  # polls only while its tab is shown (events/cross_tab.py)

    @gr.render(inputs=[job, checkpoints], triggers=[checkpoints.change], show_progress="hidden")
    def _checkpoint_buttons(job_id: str | None, steps: list[int]) -> None:
        # Rendered only when the list of checkpoints changes, so polling does not rebuild the buttons.
        if not job_id or not steps:
            gr.Markdown("No checkpoint yet.")
            return
        for checkpoint in sorted(service.list_checkpoints(job_id), key=lambda c: -c.step):
            with gr.Row():
                gr.DownloadButton(
                    f"Adapter at step {checkpoint.step} (.zip)",
                    value=str(service.adapter_zip(job_id, checkpoint.step)),
                    elem_classes=["checkpoint-download"],
                    size="sm",
                )
                if checkpoint.comfyui:  # SD3 jobs: the same LoRA in ComfyUI's key layout
                    gr.DownloadButton(
                        f"ComfyUI LoRA at step {checkpoint.step} (.safetensors)",
                        value=str(service.comfyui_lora(job_id, checkpoint.step)),
                        elem_classes=["comfyui-download"],
                        size="sm",
                    )

    share = build_share_box()
    with gr.Row():
        config = gr.Code("", language="yaml", label="Config", interactive=False, max_lines=22, elem_id="detail-config")
        log = gr.Textbox("", label="Log (tail)", lines=18, max_lines=18, autoscroll=True, elem_id="detail-log")
    return DetailTab(
        job,
        header,
        smoothing,
        line_plots,
        sample_step,
        reference_gallery,
        policy_gallery,
        text_samples,
        audio_samples,
        config,
        log,
        checkpoints,
        share,
        state,
        timer,
    )


def _line_plot(title: str, key: str) -> gr.Plot:
    return gr.Plot(
        plots.curve_figure(plots.typed_frame([]), title),
        show_label=False,
        elem_id=f"detail-plot-{key}",
        elem_classes=["curve"],
    )


def curve_figures(points: plots.Points, kind: str, smoothing: float, job_id: str | None = None) -> list[Any]:
    """The five live charts; ``job_id`` keeps each chart's zoom and legend toggles across redraws."""
    return [
        plots.curve_figure(plots.panel_frame(points, panel, smoothing), panel.title, revision=f"{job_id}:{panel.key}")
        for panel in plots.panels_for(kind)
    ]


def sample_outputs(state: DetailState, step: int | None) -> list[Any]:
    """Galleries for image jobs, the table for text jobs, players and answers for audio jobs (the others
    hidden): [reference, policy, table, audio]."""
    sample_kind = get_kind(state.kind).sample_kind
    if sample_kind == AUDIO_SAMPLE:
        return [
            gr.update(visible=False),
            gr.update(visible=False),
            gr.update(visible=False),
            gr.update(value=audio_samples_html(state.samples, step), visible=True),
        ]
    if sample_kind == IMAGE_SAMPLE:
        reference = gallery_items(state.samples, "reference", None)
        policy = gallery_items(state.samples, "policy", step)
        label = f"Fine-tuned at step {step}" if step is not None else "Fine-tuned"
        return [
            gr.update(value=reference, visible=True),
            gr.update(value=policy, label=label, visible=True),
            gr.update(visible=False),
            gr.update(visible=False),
        ]
    return [
        gr.update(visible=False),
        gr.update(visible=False),
        gr.update(value=text_frame(state.samples, step), visible=True),
        gr.update(visible=False),
    ]


def last_sample_step(state: DetailState) -> int:
    return max((s["step"] for s in state.samples), default=-1)


def as_step(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
