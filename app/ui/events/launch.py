"""Launch tab events: fill from a preset, switch the model kind, preview the config live (with each
problem shown at its field; a reward row's at the reward rows), upload prompts, try the rewards on a
worker, and Launch (two buttons, one action)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from adrpo_engine.config import ConfigError
from adrpo_engine.kinds import DEFAULT_KIND, KINDS

from .. import forms
from .. import reward_specs as R
from ..forms import CUSTOM, FIELDS
from ..launch import LaunchTab, values_of
from ..reward_rows import wire_try
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
    # The reward rows are a state drawn as rows: their problems show in the section, each naming its row.
    rows = by_field.get("rewards")
    updates[tab.rewards.errors] = "".join(f"⚠ **{message}**  \n" for message in rows) if rows else ""
    for name, component in tab.fields.items():
        if isinstance(component, gr.State):
            continue
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
    # The model list depends on the kind: refresh its choices as well as its value (the reward rows
    # redraw from the kind and rows themselves).
    updates[tab.fields["model"]] = gr.update(choices=forms.model_choices(values["kind"]), value=values["model"])
    return updates


def switch_kind(tab: LaunchTab, kind: str, model: str, rows: list[dict[str, Any]] | None) -> Updates:
    """Another model kind: offer its models; if a reward row does not fit the kind, the rows give way
    to the kind's default reward; a preset of the other kind becomes custom."""
    base = forms.base_config(None, kind)
    models = forms.model_choices(kind)
    new_model = model if model in models else models[0]
    reward_kind = KINDS[kind].reward_kind
    rows = rows or []
    fits = bool(rows) and all(
        (reward := R.reward_of(row.get("name", ""))) is None or reward.usable_for(reward_kind) for row in rows
    )
    return {
        tab.base: base,
        tab.fields["model"]: gr.update(choices=models, value=new_model),
        # new ids either way: the rows redraw for the new kind (its reward list and fit notes)
        tab.fields["rewards"]: [{**row, "id": R.row_id()} for row in rows]
        if fits
        else R.rows_from_specs(base["rewards"]),
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
    tab.field("preset", gr.Dropdown).input(
        lambda preset, kind: fill_from_preset(tab, preset, kind),
        inputs=[f["preset"], f["kind"]],
        outputs=[tab.base, *form[1:]],
    )
    tab.field("kind", gr.Radio).input(
        lambda kind, model, rows: switch_kind(tab, kind, model, rows),
        inputs=[f["kind"], f["model"], f["rewards"]],
        outputs=[tab.base, f["model"], f["rewards"]],
    )
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
        outputs=[tab.yaml_preview, tab.errors, tab.result, tab.rewards.errors, *form],
        trigger_mode="always_last",
        show_progress="hidden",
        api_name="preview_config",
    )


def wire_reward_try(tab: LaunchTab, service: StudioService) -> None:
    """ "Try the reward": a dry run of the form's config on a worker (the service checks it as a submission)."""
    wire_try(
        tab.rewards,
        service,
        lambda base, *args: forms.config_from_form(values_of(args), base),
        inputs=[tab.base, *tab.inputs()],
    )
