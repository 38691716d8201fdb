"""Launch tab events: fill from a preset, switch the model kind, preview the config live (with each
problem shown at its field), upload prompts, and Launch (two buttons, one action)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from adrpo_engine.config import ConfigError
from adrpo_engine.kinds import DEFAULT_KIND

from .. import forms
from ..forms import CUSTOM, FIELDS
from ..launch import LaunchTab, reward_dropdown_choices, reward_summary, values_of
from ..service import StudioService, Updates

ERROR_CLASS = "field-error"


def field_updates(tab: LaunchTab, errors: list[forms.FieldError], values: dict[str, Any]) -> Updates:
    """Every field's help line and highlight: the error in words at a field that has one, the field's
    own help (and no highlight) at the others. The prompt field's help is the chosen model's syntax."""
    infos = {**tab.infos, "prompt_texts": forms.prompt_help(values.get("model"))}
    by_field: dict[str, list[str]] = {}
    for error in errors:
        by_field.setdefault(error.field, []).append(error.message)
    updates: Updates = {}
    for name, component in tab.fields.items():
        messages = by_field.get(name)
        if messages:
            updates[component] = gr.update(info="⚠ " + "; ".join(messages), elem_classes=[ERROR_CLASS])
        else:
            updates[component] = gr.update(info=infos.get(name), elem_classes=[])
    return updates


def error_markdown(errors: list[forms.FieldError]) -> str:
    """The summary beside the Launch button: each problem in words, its exact config line below it."""
    items = "\n".join(f"- **{error.message}**  \n  `{error.detail}`" for error in errors)
    return f"**Please fix before launching** (the fields are marked in red):\n\n{items}"


def invalid_yaml(errors: list[forms.FieldError]) -> str:
    """What the preview shows while the form is invalid: never the last valid config."""
    lines = "\n".join(f"#  - {error.message}" for error in errors)
    return f"# The form is not a valid job config yet:\n{lines}\n# (fix the fields marked in red)\n"


def preview_updates(tab: LaunchTab, base: dict[str, Any] | None, values: dict[str, Any]) -> Updates:
    result = forms.preview(values, base)
    if result.error:
        errors = forms.field_errors(result.error)
        return {
            **field_updates(tab, errors, values),
            tab.yaml_preview: invalid_yaml(errors),
            tab.errors: error_markdown(errors),
            tab.result: "",
        }
    notes = "".join(f"\n\n⚠️ {note}" for note in result.advisories)
    return {
        **field_updates(tab, [], values),
        tab.yaml_preview: result.yaml_text,
        tab.errors: "✔ The config is valid." + notes,
        tab.result: "",
    }


def submit_form(
    service: StudioService, base: dict[str, Any] | None, values: dict[str, Any]
) -> tuple[str | None, str, list[forms.FieldError]]:
    """Submit the form through the service: (job id, message, []) or (None, "", the problems)."""
    from worker.service import SubmissionError

    try:
        config = forms.config_from_form(values, base)
        job = service.submit(config, uploads=forms.clip_uploads(values))
    except (ConfigError, SubmissionError) as error:
        return None, "", forms.field_errors(str(error))
    return job.id, f"Launched **{job.name}** `{job.id}` ({job.status}). Opening it…", []


def fill_from_preset(tab: LaunchTab, preset: str, kind: str) -> Updates:
    """A preset's config in the form (custom: the defaults of the kind shown now)."""
    base = forms.base_config(preset, kind or DEFAULT_KIND)
    values: dict[str, Any] = forms.form_from_config(base, preset)
    updates: Updates = {tab.base: base}
    updates.update((tab.fields[name], values[name]) for name in FIELDS[1:])
    # The model and reward lists depend on the kind: refresh their choices as well as their values.
    updates[tab.fields["model"]] = gr.update(choices=forms.model_choices(values["kind"]), value=values["model"])
    updates[tab.fields["reward"]] = gr.update(
        choices=reward_dropdown_choices(values["kind"], values["reward"]), value=values["reward"]
    )
    return updates


def switch_kind(tab: LaunchTab, kind: str, model: str, reward: str) -> Updates:
    """Another model kind: offer its models and rewards; a preset of the other kind becomes custom."""
    base = forms.base_config(None, kind)
    models = forms.model_choices(kind)
    names = [name for _, name in reward_dropdown_choices(kind, None)]
    new_model = model if model in models else models[0]
    new_reward = reward if reward in names else (names[0] if names else base["rewards"][0]["name"])
    return {
        tab.base: base,
        tab.fields["model"]: gr.update(choices=models, value=new_model),
        tab.fields["reward"]: gr.update(choices=reward_dropdown_choices(kind, new_reward), value=new_reward),
    }


def prompts_from_upload(tab: LaunchTab, upload: Any, column: str) -> Updates:
    path = getattr(upload, "name", upload)
    try:
        prompts = forms.read_prompt_file(path, column or "prompt")
    except (ConfigError, OSError, UnicodeError) as error:
        return {tab.errors: error_markdown(forms.field_errors(str(error)))}
    if not prompts:
        return {tab.errors: error_markdown(forms.field_errors("prompts.file: the uploaded file has no prompts"))}
    return {
        tab.fields["prompt_texts"]: "\n".join(prompts),
        tab.fields["prompt_source"]: "text",
        tab.errors: f"Loaded {len(prompts)} prompts from the file.",
    }


def form_updates_from_config(tab: LaunchTab, config: dict[str, Any]) -> Updates:
    """The form showing a job's config ("Edit in Launch" on the Jobs tab)."""
    values = forms.form_from_config(config, CUSTOM)
    return {tab.base: config, **{tab.fields[name]: values[name] for name in FIELDS}}


def wire_launch_tab(tab: LaunchTab) -> None:
    f = tab.fields
    form = tab.inputs()
    f["preset"].input(
        lambda preset, kind: fill_from_preset(tab, preset, kind),
        inputs=[f["preset"], f["kind"]],
        outputs=[tab.base, *form[1:]],
    )
    f["kind"].input(
        lambda kind, model, reward: switch_kind(tab, kind, model, reward),
        inputs=[f["kind"], f["model"], f["reward"]],
        outputs=[tab.base, f["model"], f["reward"]],
    )
    f["reward"].change(reward_summary, inputs=[f["kind"], f["reward"]], outputs=tab.reward_info)
    f["prompt_source"].change(
        lambda source: {
            f["prompt_texts"]: gr.update(visible=source in ("text", "clips")),
            tab.file_row: gr.update(visible=source == "file"),
            tab.dataset_row: gr.update(visible=source == "dataset"),
            tab.clips_row: gr.update(visible=source == "clips"),
            f["dataset_column"]: gr.update(visible=source in ("file", "dataset")),
        },
        inputs=f["prompt_source"],
        outputs=[f["prompt_texts"], tab.file_row, tab.dataset_row, tab.clips_row, f["dataset_column"]],
    )
    tab.upload.upload(
        lambda upload, column: prompts_from_upload(tab, upload, column),
        inputs=[tab.upload, f["dataset_column"]],
        outputs=[f["prompt_texts"], f["prompt_source"], tab.errors],
    )
    gr.on(
        [component.change for component in form],
        lambda base, *args: preview_updates(tab, base, values_of(args)),
        inputs=[tab.base, *form],
        outputs=[tab.yaml_preview, tab.errors, tab.result, *form],
        trigger_mode="always_last",
        show_progress="hidden",
        api_name="preview_config",
    )
