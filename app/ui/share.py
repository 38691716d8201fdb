"""The job page's "Share" box for one checkpoint: its adapter folder (the zip's files, model card
included) pushed to a Hub model repository with the token the user types, and, for LLM jobs, the adapter
merged into the base weights as one downloadable transformers folder (built by a worker, see
``JobService.merged_model``).

The server's own HF_TOKEN is never used from the page: anyone who can reach the studio could otherwise
publish under the server's account. The typed token lives only in the request that pushes: it is not
kept in a state, not logged, scrubbed from any message, and the box is emptied after every try.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from worker.hub_push import PushError, check_repo_id, push_to_hub
from worker.views import MergedModelView

from .service import StudioService

NEWEST = "newest"  # the checkpoint choice that means the latest one
MERGE_POLL_SECONDS = 2.0
TITLE = "Share: the Hugging Face Hub, a merged model"


@dataclass
class ShareBox:
    checkpoint: gr.Dropdown
    repo: gr.Textbox
    private: gr.Checkbox
    token: gr.Textbox
    push: gr.Button
    result: gr.Markdown
    merge: gr.Button
    merge_status: gr.Markdown
    merge_download: gr.DownloadButton
    merge_timer: gr.Timer


@dataclass(frozen=True)
class MergeDisplay:
    """What the merged-model row shows: a line, the zip once built, and whether to keep polling."""

    text: str
    path: str | None = None
    polling: bool = False


def build_share_box() -> ShareBox:
    with gr.Accordion(TITLE, open=False, elem_id="share-box"):
        checkpoint = gr.Dropdown(checkpoint_choices([]), value=NEWEST, label="Checkpoint", elem_id="share-checkpoint")
        gr.Markdown("**Hugging Face Hub**: the adapter zip's files (adapter, model card, config) in a model repository")
        with gr.Row():
            repo = gr.Textbox(label="Repository", placeholder="you/adrpo-digits", scale=3, elem_id="share-repo")
            private = gr.Checkbox(False, label="Private repository", scale=1, elem_id="share-private")
        token = gr.Textbox(
            label="Your Hugging Face token (write access)",
            type="password",
            info="Used for this push only: never stored or logged. The server's own token is not used here.",
            elem_id="share-token",
        )
        push = gr.Button("Push the adapter with its model card", variant="secondary", elem_id="share-push")
        result = gr.Markdown("", elem_id="share-result")
        gr.Markdown(
            "**Merged model** (LLM jobs): the adapter merged into the base weights, one transformers folder "
            "(safetensors, tokenizer) that vLLM, TGI or `AutoModelForCausalLM.from_pretrained` load without peft"
        )
        merge = gr.Button("Build the merged model", variant="secondary", elem_id="share-merge")
        merge_status = gr.Markdown("", elem_id="share-merge-status")
        merge_download = gr.DownloadButton("Merged model (.zip)", visible=False, elem_id="share-merge-download")
        merge_timer = gr.Timer(MERGE_POLL_SECONDS, active=False)
    return ShareBox(checkpoint, repo, private, token, push, result, merge, merge_status, merge_download, merge_timer)


def checkpoint_choices(steps: list[int]) -> list[tuple[str, str | int]]:
    return [("the newest", NEWEST), *((f"step {step}", step) for step in sorted(steps, reverse=True))]


def chosen_step(checkpoint: str | int | None) -> int | None:
    """The dropdown's value as a step (None: the newest); anything else names the field."""
    if checkpoint in (None, "", NEWEST):
        return None
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, int):
        raise ValueError(f"checkpoint: {checkpoint!r} is not one of this job's checkpoint steps")
    return checkpoint


def push_message(
    service: StudioService, job_id: str | None, repo: str, checkpoint: str | int | None, private: bool, token: str
) -> str:
    """One push from the page, as the line the page shows: the commit's address or what to change."""
    repo, token = (repo or "").strip(), (token or "").strip()
    if not job_id:
        return "**Not pushed:** pick a job first."
    if not token:
        return "**Not pushed:** token: type a Hugging Face token with write access (it is not stored)."
    try:
        step = chosen_step(checkpoint)
        check_repo_id(repo, field="repository")
        url = push_to_hub(service, job_id, repo, step, private, token=token)
    except (PushError, LookupError, ValueError) as error:
        return f"**Not pushed:** {str(error).replace(token, '***')}"
    return f"**Pushed** {'(private) ' if private else ''}to `{repo}`: {url}"


def merge_display(
    service: StudioService, job_id: str | None, checkpoint: str | int | None, build: bool
) -> MergeDisplay:
    """The merged model of the chosen checkpoint: asked for (``build``) or looked at by the poll."""
    if not job_id:
        return MergeDisplay("Pick a job first.")
    try:
        view = service.merged_model(job_id, chosen_step(checkpoint), build=build)
    except (LookupError, ValueError, RuntimeError) as error:  # not an LLM, no such step, broker down
        return MergeDisplay(f"**Not built:** {error}")
    return _shown(service, view)


def _shown(service: StudioService, view: MergedModelView) -> MergeDisplay:
    if view.status == "ready":
        path = str(service.merged_model_zip(view.job_id, view.step))
        return MergeDisplay(f"Merged model of step {view.step}: `{view.file}`", path=path)
    if view.status == "building":
        return MergeDisplay(f"A worker is merging step {view.step} (loads the whole base model)…", polling=True)
    if view.status == "failed":
        return MergeDisplay(f"**The merge of step {view.step} failed:** {view.error}")
    return MergeDisplay(f"Step {view.step} has no merged model yet.")
