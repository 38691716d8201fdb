"""Launch tab: the job form, a live YAML preview of the exact config, and the Launch button.

Components are registered under the ids of :data:`app.ui.forms.FIELDS`, so filling the form from a
preset, previewing and submitting are each one loop over the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from adrpo_engine.config import ConfigError
from adrpo_engine.kinds import DEFAULT_KIND

from . import forms
from .forms import ALGORITHM_LABELS, CUSTOM, FIELDS, KIND_LABELS
from . import reward_specs
from .reward_rows import RewardRows, build_reward_rows

DEFAULT_PRESET = "digits-even"


@dataclass
class LaunchTab:
    fields: dict[str, gr.components.Component]
    base: gr.State  # the config the form edits (the preset's), so hidden settings survive
    upload: gr.UploadButton
    rewards: RewardRows
    errors: gr.Markdown
    yaml_preview: gr.Code
    launch: gr.Button
    result: gr.Markdown

    def inputs(self) -> list[gr.components.Component]:
        return [self.fields[name] for name in FIELDS]


def initial_values() -> dict[str, Any]:
    return forms.form_from_config(forms.base_config(DEFAULT_PRESET), DEFAULT_PRESET)


def build_launch_tab() -> LaunchTab:
    start = initial_values()
    fields: dict[str, Any] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown("Pick a demo preset to fill the form (the *digits-even* demo runs on a laptop CPU), "
                        "change what you like, and press **Launch**. The preview on the right is the exact "
                        "config the job will run.")
            with gr.Row():
                fields["preset"] = gr.Dropdown(forms.preset_choices(), value=start["preset"], label="Preset",
                                               elem_id="launch-preset", scale=3)
                fields["name"] = gr.Textbox(start["name"], label="Run name", elem_id="launch-name", scale=1)
            with gr.Row():
                fields["kind"] = gr.Radio([(label, kind) for kind, label in KIND_LABELS.items()],
                                          value=start["kind"], label="Model kind", elem_id="launch-kind")
                fields["model"] = gr.Dropdown(forms.model_choices(start["kind"]), value=start["model"],
                                              allow_custom_value=True, label="Base model",
                                              info="A preset's model, any hub id, or a local path.",
                                              elem_id="launch-model")
            rewards = build_reward_rows(start["rewards"], fields["kind"], start["kind"])
            fields["rewards"] = rewards.rows
            with gr.Group():
                fields["prompt_source"] = gr.Radio(
                    [("Type prompts", "text"), ("Prompt file", "file"), ("Dataset", "dataset")],
                    value=start["prompt_source"], label="Prompts", elem_id="launch-prompt-source")
                fields["prompt_texts"] = gr.Textbox(start["prompt_texts"], lines=3, label="Prompts, one a line",
                                                    visible=start["prompt_source"] == "text",
                                                    elem_id="launch-prompt-texts")
                with gr.Row(visible=start["prompt_source"] == "file") as file_row:
                    fields["prompt_file"] = gr.Textbox(start["prompt_file"], label="Prompt file on the worker",
                                                       placeholder="builtin:t2i-prompts or /data/prompts.txt",
                                                       elem_id="launch-prompt-file")
                    upload = gr.UploadButton("Upload .txt / .jsonl (copies the prompts into the form)",
                                             file_types=[".txt", ".jsonl"], size="sm")
                with gr.Row(visible=start["prompt_source"] == "dataset") as dataset_row:
                    fields["dataset"] = gr.Textbox(start["dataset"], label="Dataset id or path",
                                                   placeholder="openai/gsm8k", elem_id="launch-dataset")
                    fields["dataset_split"] = gr.Textbox(start["dataset_split"], label="Split")
                fields["dataset_column"] = gr.Textbox(start["dataset_column"], label="Prompt column (file or dataset)",
                                                      visible=start["prompt_source"] != "text")
            fields["algorithm"] = gr.Radio([(label, name) for name, label in ALGORITHM_LABELS.items()],
                                           value=start["algorithm"], label="Algorithm", elem_id="launch-algorithm")
            with gr.Row():
                fields["beta0"] = gr.Number(start["beta0"], label="β₀ (base regularisation)",
                                            elem_id="launch-beta0")
                # Text boxes: empty means the default (a number box turns empty into 0 = fixed beta).
                fields["a_min"] = gr.Textbox(start["a_min"], label="A_min", placeholder=forms.A_MIN_PLACEHOLDER,
                                             elem_id="launch-a-min")
                fields["a_max"] = gr.Textbox(start["a_max"], label="A_max", placeholder="empty = +β₀",
                                             elem_id="launch-a-max")
            with gr.Row():
                fields["steps"] = gr.Number(start["steps"], label="Steps", precision=0,
                                            elem_id="launch-steps")
                fields["lr"] = gr.Number(start["lr"], label="Learning rate", elem_id="launch-lr")
                fields["group_size"] = gr.Number(start["group_size"], label="Group size (samples per prompt)",
                                                 precision=0, elem_id="launch-group-size")
                fields["prompts_per_step"] = gr.Number(start["prompts_per_step"], label="Prompts per step",
                                                       precision=0)
            with gr.Row():
                fields["lora_rank"] = gr.Number(start["lora_rank"], label="LoRA rank", precision=0,
                                                elem_id="launch-lora-rank")
                fields["lora_targets"] = gr.Textbox(start["lora_targets"], label="LoRA target modules",
                                                    placeholder="empty = the architecture's default",
                                                    elem_id="launch-lora-targets")
                fields["seed"] = gr.Number(start["seed"], label="Seed", precision=0,
                                           elem_id="launch-seed")
            with gr.Accordion("Advanced: any other config key", open=False):
                fields["extra"] = gr.Textbox("", lines=3, label="KEY=VALUE lines (as `adrpo train --set`)",
                                             placeholder="sample_every=10\nflow.sample_steps=8",
                                             elem_id="launch-extra")
        with gr.Column(scale=2):
            errors = gr.Markdown("", elem_id="launch-errors")
            launch = gr.Button("Launch", variant="primary", elem_id="launch-button")
            result = gr.Markdown("", elem_id="launch-result")
            yaml_preview = gr.Code(forms.preview(start).yaml_text, language="yaml", label="Config preview (YAML)",
                                   interactive=False, elem_id="launch-yaml")
    base = gr.State(forms.base_config(DEFAULT_PRESET))
    tab = LaunchTab(fields, base, upload, rewards, errors, yaml_preview, launch, result)
    _wire_form(tab, file_row, dataset_row)
    return tab


def _wire_form(tab: LaunchTab, file_row: gr.Row, dataset_row: gr.Row) -> None:
    f = tab.fields
    f["preset"].input(fill_from_preset, inputs=[f["preset"], f["kind"]],
                      outputs=[tab.base, *tab.inputs()[1:]])
    f["kind"].input(switch_kind, inputs=[f["kind"], f["preset"], f["model"], f["rewards"]],
                    outputs=[tab.base, f["model"], f["rewards"]])
    f["prompt_source"].change(
        lambda source: (gr.update(visible=source == "text"), gr.update(visible=source == "file"),
                        gr.update(visible=source == "dataset"), gr.update(visible=source != "text")),
        inputs=f["prompt_source"], outputs=[f["prompt_texts"], file_row, dataset_row, f["dataset_column"]])
    tab.upload.upload(prompts_from_upload, inputs=[tab.upload, f["dataset_column"]],
                      outputs=[f["prompt_texts"], f["prompt_source"], tab.errors])
    gr.on([component.change for component in tab.inputs()], preview_form, inputs=[tab.base, *tab.inputs()],
          outputs=[tab.yaml_preview, tab.errors], trigger_mode="always_last", show_progress="hidden",
          api_name="preview_config")


def values_of(args: tuple[Any, ...]) -> dict[str, Any]:
    """The handler's positional form values as a dict keyed by field id."""
    return dict(zip(FIELDS, args))


def fill_from_preset(preset: str, kind: str) -> list[Any]:
    """A preset's config in the form (custom: the defaults of the kind shown now)."""
    base = forms.base_config(preset, kind or DEFAULT_KIND)
    values: dict[str, Any] = forms.form_from_config(base, preset)
    # The model list depends on the kind: refresh its choices as well as its value.
    values["model"] = gr.update(choices=forms.model_choices(values["kind"]), value=values["model"])
    return [base] + [values[name] for name in FIELDS[1:]]


def switch_kind(kind: str, preset: str, model: str, rows: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    """Another model kind: offer its models; rewards that do not fit it give way to the kind's default."""
    from adrpo_engine.rewards import REWARD_KIND_OF_JOB, registered_reward

    base = forms.base_config(None, kind)
    models = forms.model_choices(kind)
    new_model = model if model in models else models[0]
    fits = all((reward := registered_reward(row.get("name", ""))) is None or reward.kind == REWARD_KIND_OF_JOB[kind]
               for row in rows or [])
    new_rows = rows if rows and fits else reward_specs.rows_from_specs(base["rewards"])
    return base, gr.update(choices=models, value=new_model), new_rows


def preview_form(base: dict[str, Any] | None, *args: Any) -> tuple[str, str]:
    result = forms.preview(values_of(args), base)
    if result.error:
        return gr.skip(), error_markdown(result.error)
    notes = "".join(f"\n\n⚠️ {note}" for note in result.advisories)
    return result.yaml_text, ("✔ The config is valid." + notes)


def error_markdown(message: str) -> str:
    """A validation message as the person reads it: one bullet per field."""
    lines = [line for line in message.splitlines() if line.strip()]
    bullets = "\n".join(f"- {line}" for line in lines)
    return f"**Please fix before launching:**\n\n{bullets}"


def prompts_from_upload(upload: Any, column: str) -> tuple[Any, Any, str]:
    path = getattr(upload, "name", upload)
    try:
        prompts = forms.read_prompt_file(path, column or "prompt")
    except (ConfigError, OSError, UnicodeError) as error:
        return gr.skip(), gr.skip(), error_markdown(str(error))
    if not prompts:
        return gr.skip(), gr.skip(), error_markdown("prompts.file: the uploaded file has no prompts")
    return "\n".join(prompts), "text", f"Loaded {len(prompts)} prompts from the file."


def form_updates_from_config(config: dict[str, Any]) -> list[Any]:
    """Form values (and base) showing a job's config: "copy to Launch" from the Jobs tab."""
    values = forms.form_from_config(config, CUSTOM)
    return [config] + [values[name] for name in FIELDS]
