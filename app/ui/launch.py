"""Launch tab: the job form, a live YAML preview of the exact config, and the Launch button.

Components are registered under the ids of :data:`app.ui.forms.FIELDS`, so filling the form from a
preset, previewing and submitting are each one loop over the same list. The events are wired in
``app/ui/events/launch.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from . import forms
from .forms import ALGORITHM_LABELS, FIELDS, KIND_LABELS
from .reward_rows import RewardRows, build_reward_rows

DEFAULT_PRESET = "digits-even"

# The classes the form is built from (the reward rows' field is their gr.State); gradio's base Component
# declares no events, so the fields are typed by what they are.
FormField = gr.Dropdown | gr.Radio | gr.Number | gr.Textbox | gr.CheckboxGroup | gr.State | gr.File  # File: clips
FieldT = TypeVar("FieldT", bound=FormField)


@dataclass
class LaunchTab:
    fields: dict[str, FormField]
    base: gr.State  # the config the form edits (the preset's), so hidden settings survive
    upload: gr.UploadButton
    rewards: RewardRows  # the reward rows (fields["rewards"] is their state) and "Try the reward"
    errors: gr.Markdown
    yaml_preview: gr.Code
    launch: gr.Button
    launch_bottom: gr.Button  # the same action at the end of the long form
    result: gr.Markdown
    file_row: gr.Row
    dataset_row: gr.Row
    clips_row: gr.Row
    infos: dict[str, str | None]  # each field's own help line, restored once its error is fixed

    def inputs(self) -> list[FormField]:
        return [self.fields[name] for name in FIELDS]

    def field(self, name: str, kind: type[FieldT]) -> FieldT:
        """``fields[name]`` as the component class it was built as (for the events only that class has)."""
        component = self.fields[name]
        if not isinstance(component, kind):
            raise TypeError(f"launch field {name} is a {type(component).__name__}, not a {kind.__name__}")
        return component


def initial_values() -> dict[str, Any]:
    return forms.form_from_config(forms.base_config(DEFAULT_PRESET), DEFAULT_PRESET)


def build_launch_tab(user_modules: tuple[str, ...] = ()) -> LaunchTab:
    """``user_modules``: the user reward modules the service allows (the reward rows offer user functions
    only then)."""
    start = initial_values()
    fields: dict[str, FormField] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown(
                "Pick a demo preset to fill the form (the *digits-even* demo runs on a laptop CPU), "
                "change what you like, and press **Launch**. The preview on the right is the exact "
                "config the job will run."
            )
            with gr.Row():
                fields["preset"] = gr.Dropdown(
                    forms.preset_choices(), value=start["preset"], label="Preset", elem_id="launch-preset", scale=3
                )
                fields["name"] = gr.Textbox(start["name"], label="Run name", elem_id="launch-name", scale=1)
            with gr.Row():
                fields["kind"] = gr.Radio(
                    [(label, kind) for kind, label in KIND_LABELS.items()],
                    value=start["kind"],
                    label="Model kind",
                    elem_id="launch-kind",
                )
                fields["model"] = gr.Dropdown(
                    forms.model_choices(start["kind"]),
                    value=start["model"],
                    allow_custom_value=True,
                    label="Base model",
                    info="A preset's model, any hub id, or a local path.",
                    elem_id="launch-model",
                )
            rewards = build_reward_rows(start["rewards"], fields["kind"], start["kind"], user_modules)
            fields["rewards"] = rewards.rows
            with gr.Group():
                fields["prompt_source"] = gr.Radio(
                    [
                        ("Type prompts", "text"),
                        ("Prompt file", "file"),
                        ("Dataset", "dataset"),
                        ("Audio clips", "clips"),
                    ],
                    value=start["prompt_source"],
                    label="Prompts",
                    elem_id="launch-prompt-source",
                )
                fields["prompt_texts"] = gr.Textbox(
                    start["prompt_texts"],
                    lines=3,
                    label="Prompts, one a line",
                    visible=start["prompt_source"] in ("text", "clips"),
                    info=forms.prompt_help(start["model"]),
                    elem_id="launch-prompt-texts",
                )
                with gr.Row(visible=start["prompt_source"] == "file") as file_row:
                    fields["prompt_file"] = gr.Textbox(
                        start["prompt_file"],
                        label="Prompt file on the worker",
                        placeholder="builtin:t2i-prompts or /data/prompts.txt",
                        elem_id="launch-prompt-file",
                    )
                    upload = gr.UploadButton(
                        "Upload .txt / .jsonl (copies the prompts into the form)",
                        file_types=[".txt", ".jsonl"],
                        size="sm",
                    )
                with gr.Row(visible=start["prompt_source"] == "dataset") as dataset_row:
                    fields["dataset"] = gr.Textbox(
                        start["dataset"],
                        label="Dataset id or path",
                        placeholder="openai/gsm8k",
                        elem_id="launch-dataset",
                    )
                    fields["dataset_split"] = gr.Textbox(start["dataset_split"], label="Split")
                # Audio-language jobs: clips that travel with the job, each with the question above (one for
                # all, or one a line) and its answer (one a line, in the clips' order).
                with gr.Row(visible=start["prompt_source"] == "clips") as clips_row:
                    fields["clip_files"] = gr.File(
                        file_count="multiple",
                        file_types=[".wav", ".flac", ".ogg", ".mp3"],
                        type="filepath",
                        label="Audio clips (uploaded with the job)",
                        elem_id="launch-clip-files",
                    )
                    fields["clip_answers"] = gr.Textbox(
                        start["clip_answers"],
                        lines=3,
                        label="Answers, one a line (the options' text, e.g. for mc_answer)",
                        elem_id="launch-clip-answers",
                    )
                fields["dataset_column"] = gr.Textbox(
                    start["dataset_column"],
                    label="Prompt column (file or dataset)",
                    visible=start["prompt_source"] in ("file", "dataset"),
                )
            fields["algorithm"] = gr.Radio(
                [(label, name) for name, label in ALGORITHM_LABELS.items()],
                value=start["algorithm"],
                label="Algorithm",
                elem_id="launch-algorithm",
            )
            with gr.Row():
                fields["beta0"] = gr.Number(start["beta0"], label="β₀ (base regularisation)", elem_id="launch-beta0")
                # Text boxes: empty means the default (a number box turns empty into 0 = fixed beta).
                fields["a_min"] = gr.Textbox(
                    start["a_min"], label="A_min", placeholder=forms.A_MIN_PLACEHOLDER, elem_id="launch-a-min"
                )
                fields["a_max"] = gr.Textbox(
                    start["a_max"], label="A_max", placeholder="empty = +β₀", elem_id="launch-a-max"
                )
            with gr.Row(visible=start["algorithm"] == "dpo") as dpo_row:
                fields["dpo_beta"] = gr.Number(
                    start["dpo_beta"], label="DPO temperature (flow.dpo_beta)", elem_id="launch-dpo-beta"
                )
                fields["dpo_pairs"] = gr.Dropdown(
                    list(forms.DPO_PAIR_MODES),
                    value=start["dpo_pairs"],
                    label="Preference pairs",
                    elem_id="launch-dpo-pairs",
                )
                fields["dpo_refresh_every"] = gr.Number(
                    start["dpo_refresh_every"],
                    precision=0,
                    label="Redraw pairs every K steps (0 = offline)",
                    elem_id="launch-dpo-refresh",
                )
            with gr.Row():
                fields["steps"] = gr.Number(start["steps"], label="Steps", precision=0, elem_id="launch-steps")
                fields["lr"] = gr.Number(start["lr"], label="Learning rate", elem_id="launch-lr")
                fields["group_size"] = gr.Number(
                    start["group_size"],
                    label="Group size (samples per prompt)",
                    precision=0,
                    elem_id="launch-group-size",
                )
                fields["prompts_per_step"] = gr.Number(start["prompts_per_step"], label="Prompts per step", precision=0)
            with gr.Row():
                fields["lora_rank"] = gr.Number(
                    start["lora_rank"], label="LoRA rank", precision=0, elem_id="launch-lora-rank"
                )
                fields["lora_targets"] = gr.Textbox(
                    start["lora_targets"],
                    label="LoRA target modules",
                    placeholder="empty = the architecture's default",
                    elem_id="launch-lora-targets",
                )
                fields["seed"] = gr.Number(start["seed"], label="Seed", precision=0, elem_id="launch-seed")
            fields["report_to"] = gr.CheckboxGroup(
                forms.tracker_choices(),
                value=start["report_to"],
                label="Experiment trackers (report_to)",
                info="Each also gets every metric, the config and the samples. TensorBoard and MLflow write "
                "into the run folder unless MLFLOW_TRACKING_URI says otherwise, W&B runs offline unless "
                "WANDB_API_KEY is set, Trackio writes to TRACKIO_DIR (docs/ecosystem.md).",
                elem_id="launch-report-to",
            )
            with gr.Accordion("Advanced: any other config key", open=False):
                fields["extra"] = gr.Textbox(
                    "",
                    lines=3,
                    label="KEY=VALUE lines (as `adrpo train --set`)",
                    placeholder="sample_every=10\nflow.sample_steps=8",
                    elem_id="launch-extra",
                )
            launch_bottom = gr.Button("Launch", variant="primary", elem_id="launch-button-bottom")
        with gr.Column(scale=2):
            errors = gr.Markdown("", elem_id="launch-errors")
            launch = gr.Button("Launch", variant="primary", elem_id="launch-button")
            result = gr.Markdown("", elem_id="launch-result")
            yaml_preview = gr.Code(
                forms.preview(start).yaml_text,
                language="yaml",
                label="Config preview (YAML)",
                interactive=False,
                elem_id="launch-yaml",
            )
    base = gr.State(forms.base_config(DEFAULT_PRESET))
    fields["algorithm"].change(
        lambda algorithm: gr.update(visible=algorithm == "dpo"), inputs=fields["algorithm"], outputs=dpo_row
    )
    infos = {name: getattr(component, "info", None) for name, component in fields.items()}
    return LaunchTab(
        fields,
        base,
        upload,
        rewards,
        errors,
        yaml_preview,
        launch,
        launch_bottom,
        result,
        file_row,
        dataset_row,
        clips_row,
        infos,
    )


def values_of(args: tuple[Any, ...]) -> dict[str, Any]:
    """The handler's positional form values as a dict keyed by field id."""
    return dict(zip(FIELDS, args))
