"""Compare tab: the same prompt and seed through the reference model and a fine-tuned checkpoint,
side by side with rewards. Generation runs on a worker (``request_comparison``); the page polls
``get_comparison`` until it is done, so closing the tab loses nothing. The events are wired in
``app/ui/events/compare.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from adrpo_engine.progress import IMAGE_SAMPLE

from .audio_views import comparison_clip_html
from .cards import sample_card
from .common import POLL_SECONDS, round_reward

LATEST = -1  # the checkpoint choice meaning "the job's latest checkpoint"
TEXT_COLUMNS = ["#", "reference", "reference reward", "fine-tuned", "fine-tuned reward"]
TEXT_COLUMN_WIDTHS: list[str | int] = ["5%", "36%", "11%", "36%", "12%"]


@dataclass
class CompareTab:
    job: gr.Dropdown
    checkpoint: gr.Dropdown
    prompt: gr.Textbox
    seed: gr.Number
    num_samples: gr.Slider
    run: gr.Button
    status: gr.Markdown
    reference: gr.Gallery
    policy: gr.Gallery
    texts: gr.Dataframe
    clip: gr.HTML
    comparison_id: gr.State
    timer: gr.Timer
    cancel: gr.Button


def build_compare_tab() -> CompareTab:
    gr.Markdown(
        "Generate from the **reference** model (adapter off) and the **fine-tuned** checkpoint with the "
        "same prompt and seed. It runs on a worker; this page shows its progress."
    )
    with gr.Row():
        job = gr.Dropdown([], label="Job", elem_id="compare-job", scale=3, allow_custom_value=True)
        checkpoint = gr.Dropdown(
            [("latest", LATEST)],
            value=LATEST,
            label="Checkpoint",
            elem_id="compare-checkpoint",
            allow_custom_value=True,
            scale=1,
        )
    with gr.Row():
        prompt = gr.Textbox("", label="Prompt", elem_id="compare-prompt", scale=3)
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="compare-seed", scale=1)
        num_samples = gr.Slider(1, 16, value=8, step=1, label="Samples", elem_id="compare-n", scale=1)
    with gr.Row():
        run = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=3)
        cancel = gr.Button("Cancel", variant="secondary", elem_id="compare-cancel", scale=1)
    status = gr.Markdown("", elem_id="compare-status")
    clip = gr.HTML("", visible=False, elem_id="compare-clip")  # an audio job's clip, above both answers
    with gr.Row():
        reference = gr.Gallery(
            label="Reference",
            columns=4,
            height="auto",
            object_fit="contain",
            elem_id="compare-reference",
            elem_classes=["sample-cards"],
        )
        policy = gr.Gallery(
            label="Fine-tuned",
            columns=4,
            height="auto",
            object_fit="contain",
            elem_id="compare-policy",
            elem_classes=["sample-cards"],
        )
    texts = gr.Dataframe(
        pd.DataFrame(columns=TEXT_COLUMNS),
        interactive=False,
        wrap=True,
        visible=False,
        column_widths=TEXT_COLUMN_WIDTHS,
        label="Reference vs fine-tuned",
        elem_id="compare-texts",
    )
    comparison_id = gr.State(None)
    timer = gr.Timer(POLL_SECONDS, active=False)
    return CompareTab(
        job,
        checkpoint,
        prompt,
        seed,
        num_samples,
        run,
        status,
        reference,
        policy,
        texts,
        clip,
        comparison_id,
        timer,
        cancel,
    )


def mean_reward(samples: list[Any], role: str) -> float | None:
    rewards = [s.reward for s in samples if s.role == role and s.reward is not None]
    return sum(rewards) / len(rewards) if rewards else None


def comparison_summary(comparison: Any) -> str:
    status = comparison.status
    where = f"checkpoint step {comparison.step}" if comparison.step is not None else "latest checkpoint"
    head = f"**{status}** — prompt *{comparison.prompt}*, seed {comparison.seed}, {where}"
    if status in ("failed", "cancelled"):
        return head + f"\n\n**{'Error' if status == 'failed' else 'Cancelled'}:** {comparison.error}"
    if status != "succeeded":
        return head + " … generating on a worker"
    ref, pol = mean_reward(comparison.samples, "reference"), mean_reward(comparison.samples, "policy")
    if ref is None or pol is None:
        return head
    return head + f"\n\nmean reward: reference **{ref:.4f}** → fine-tuned **{pol:.4f}** ({pol - ref:+.4f})"


def comparison_outputs(comparison: Any) -> list[Any]:
    """Status line, the two galleries (images) or the side-by-side table (text; audio: with the clip above)."""
    samples = list(comparison.samples)  # the service's order: sample k of both models share a noise draw
    images = [s for s in samples if s.kind == IMAGE_SAMPLE and s.image_path]
    if images or not samples:

        def items(role: str) -> list[tuple[str, str | None]]:
            chosen = [s for s in images if s.role == role]
            captions = [
                f"#{k + 1} " + (f"{s.text}\n" if s.text else "") + f"reward {_fmt(s.reward)}"
                for k, s in enumerate(chosen)
            ]
            return [(sample_card(s.image_path, text), None) for s, text in zip(chosen, captions)]

        return [
            comparison_summary(comparison),
            gr.update(value=items("reference"), visible=True),
            gr.update(value=items("policy"), visible=True),
            gr.update(visible=False),
            gr.update(value="", visible=False),
        ]
    ref = [s for s in samples if s.role == "reference"]
    pol = [s for s in samples if s.role == "policy"]
    clip = comparison_clip_html(samples)  # an audio comparison: its one clip, played once
    rows = [
        [k + 1, r.text, round_reward(r.reward), p.text, round_reward(p.reward)]
        for k, (r, p) in enumerate(zip(ref, pol))
    ]
    return [
        comparison_summary(comparison),
        gr.update(visible=False),
        gr.update(visible=False),
        gr.update(value=pd.DataFrame(rows, columns=TEXT_COLUMNS), visible=True),
        gr.update(value=clip, visible=bool(clip)),
    ]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
