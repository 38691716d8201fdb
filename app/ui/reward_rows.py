"""The Launch tab's reward section: a list of rows (reward, its model, weight, and its options as fields
generated from the reward's schema), add/remove, and "Try the reward" (a dry run on a worker).

The rows live in one ``gr.State`` (a list of row dicts, :mod:`app.ui.reward_specs`) that the form
reads like any other field; the rows are drawn by ``gr.render`` from a second state, the *layout*,
which changes only when rows are added, removed or get another reward (or the job kind changes), so
typing in a field never redraws the rows under the cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from . import reward_specs as R

DRY_RUN_POLL_S = 0.5
DRY_RUN_TIMEOUT_S = 600.0


@dataclass
class RewardRows:
    rows: gr.State  # the form's "rewards" field: list of row dicts
    layout: gr.State  # {"layout": ..., "rows": [...], "kind": ...}: what the rows are drawn from
    errors: gr.Markdown  # the rows' problems, each naming its row and field ("Reward 2 · model: ...")
    add: gr.Button
    try_button: gr.Button
    try_status: gr.Markdown
    try_table: gr.Dataframe
    try_images: gr.Gallery


def snapshot(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return {"layout": R.layout_of(rows, kind), "rows": rows, "kind": kind}


def build_reward_rows(
    start_rows: list[dict[str, Any]],
    kind: gr.components.Component,
    start_kind: str,
    user_modules: tuple[str, ...] = (),
) -> RewardRows:
    """Lay out the section (inside the Launch tab's form column) and wire its own events. ``user_modules``:
    the user reward modules the service allows (none: the reward list offers no user functions)."""
    rows = gr.State(start_rows)
    layout = gr.State(snapshot(start_rows, start_kind))
    with gr.Group(elem_id="launch-rewards"):
        gr.Markdown(
            "**Rewards**: the job's reward is the weighted sum of these rows; each is logged on its own "
            "(`reward/<name>`) beside the sum.",
            padding=True,
        )
        errors = gr.Markdown("", elem_id="launch-reward-errors")

        with gr.Column():  # the rows are drawn here (gr.render replaces this column's children)

            @gr.render(inputs=layout)
            def draw(drawn: dict[str, Any]) -> None:
                for index, row in enumerate(drawn["rows"]):
                    _draw_row(index, row, drawn["kind"], rows, user_modules)

        with gr.Row():
            add = gr.Button("+ Add a reward", size="sm", elem_id="launch-reward-add")
            try_button = gr.Button("Try the reward", size="sm", variant="secondary", elem_id="launch-reward-try")
        try_status = gr.Markdown("", elem_id="launch-reward-try-status")
        try_table = gr.Dataframe(
            visible=False,
            interactive=False,
            wrap=True,
            elem_id="launch-reward-try-table",
            label="Reference samples of the first prompt, scored by each reward",
        )
        try_images = gr.Gallery(
            visible=False,
            columns=8,
            height=200,
            object_fit="contain",
            show_label=False,
            elem_id="launch-reward-try-images",
            elem_classes=["pixelated"],
        )
    section = RewardRows(rows, layout, errors, add, try_button, try_status, try_table, try_images)
    add.click(add_row, inputs=[rows, kind], outputs=rows)
    # Only the rows decide a redraw (a kind switch gives its rows new ids): a second listener on the kind
    # radio (whose props every preview updates) raced this one with an old layout and drew the rows twice,
    # dropping what was typed into the first drawing.
    rows.change(follow_layout, inputs=[rows, kind, layout], outputs=layout, show_progress="hidden")
    return section


def add_row(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [*(rows or []), R.new_row(R.first_reward(kind or "flow"))]


def follow_layout(rows: list[dict[str, Any]], kind: str, drawn: dict[str, Any] | None) -> Any:
    """Redraw only when rows were added, removed or re-picked, or the kind changed."""
    if drawn is not None and drawn.get("layout") == R.layout_of(rows, kind):
        return gr.skip()
    return snapshot(rows, kind)


def _draw_row(index: int, row: dict[str, Any], kind: str, rows: gr.State, user_modules: tuple[str, ...]) -> None:
    key = row["id"]
    names = [r for r in [row["name"]] if r]
    with gr.Group(key=f"reward-row-{key}", elem_classes=["reward-row"]):
        with gr.Row(equal_height=True):
            name = gr.Dropdown(
                R.reward_choices(kind, names),
                value=row["name"] or None,
                allow_custom_value=True,
                label=f"Reward {index + 1}",
                info=R.name_help(user_modules),
                elem_id=f"launch-reward-{index}-name",
                scale=3,
                key=f"name-{key}",
                interactive=True,
            )
            models = R.models_for(row["name"])
            model = gr.Dropdown(
                models,
                value=row.get("model") or None,
                allow_custom_value=True,
                label="Model",
                info="A built-in model, a hub id or a local path.",
                visible=bool(models),
                elem_id=f"launch-reward-{index}-model",
                scale=3,
                key=f"model-{key}",
                interactive=True,
            )
            weight = gr.Number(
                row.get("weight", 1.0),
                label="Weight",
                elem_id=f"launch-reward-{index}-weight",
                scale=1,
                min_width=90,
                key=f"weight-{key}",
                interactive=True,
            )
            remove = gr.Button(
                "Remove", size="sm", scale=0, min_width=80, elem_id=f"launch-reward-{index}-remove", key=f"remove-{key}"
            )
        gr.Markdown(R.row_summary(row["name"], kind), padding=True, key=f"summary-{key}")
        fields = R.option_fields(row["name"])
        if fields:
            with gr.Row():
                for field in fields:
                    component = _option_component(
                        field, (row.get("options") or {}).get(field.name, field.default), index, key
                    )
                    component.input(
                        _option_setter(key, field.name), inputs=[component, rows], outputs=rows, show_progress="hidden"
                    )
    name.input(lambda chosen, current: R.rename_row(current, key, chosen), inputs=[name, rows], outputs=rows)
    # .input, not .change: a drawn field reports its value on .change, and several handlers writing the
    # whole row list at once from the same old list lose each other's edits (and redraw the rows twice).
    model.input(
        lambda value, current: R.replace_row(current, key, model=value or ""),
        inputs=[model, rows],
        outputs=rows,
        show_progress="hidden",
    )
    weight.input(
        lambda value, current: R.replace_row(current, key, weight=value),
        inputs=[weight, rows],
        outputs=rows,
        show_progress="hidden",
    )
    remove.click(lambda current: [r for r in current if r["id"] != key], inputs=rows, outputs=rows)


def _option_setter(key: str, option: str) -> Callable[[Any, list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda value, current: R.set_option(current, key, option, value)


def _option_component(
    field: R.OptionField, value: Any, index: int, key: str
) -> gr.Checkbox | gr.Dropdown | gr.Number | gr.Textbox:
    """The input for one option, typed by its schema; the help and range are its info line."""
    limits = (
        ""
        if field.minimum is None and field.maximum is None
        else f" [{'' if field.minimum is None else field.minimum}..{'' if field.maximum is None else field.maximum}]"
    )
    common = {
        "label": field.name + (" *" if field.required else ""),
        "info": field.help + limits,
        "elem_id": f"launch-reward-{index}-option-{field.name}",
        "key": f"option-{key}-{field.name}",
        "min_width": 140,
        "interactive": True,
    }
    if field.type == "bool":
        return gr.Checkbox(bool(value), **common)
    if field.type == "choice":
        return gr.Dropdown(list(field.choices), value=value, **common)
    if field.type in ("int", "float"):
        return gr.Number(
            value, precision=0 if field.type == "int" else None, minimum=field.minimum, maximum=field.maximum, **common
        )
    return gr.Textbox("" if value is None else str(value), **common)


# ----------------------------------------------------------------------------------------------
# Try the reward


def wire_try(
    section: RewardRows, service: Any, config_of: Callable[..., dict[str, Any]], inputs: list[gr.components.Component]
) -> None:
    """The "Try the reward" button: queue a dry run of the form's config on a worker and show its scores.
    ``config_of(*values of inputs)`` builds the config (raising ConfigError naming a bad field)."""

    def try_reward(*values: Any) -> Iterator[list[Any]]:
        from adrpo_engine.config import ConfigError
        from worker.service import SubmissionError

        hidden = [gr.update(visible=False), gr.update(visible=False)]
        try:
            view = service.request_dry_run(config_of(*values))
        except (ConfigError, SubmissionError) as error:
            yield [f"**Cannot try these rewards:** {R.in_words(str(error))}", *hidden]
            return
        started = time.monotonic()
        yield ["Scoring the reference model's samples for the first prompt on a worker…", *hidden]
        while view.status in ("queued", "running") and time.monotonic() - started < DRY_RUN_TIMEOUT_S:
            time.sleep(DRY_RUN_POLL_S)
            view = service.get_dry_run(view.id)
        yield dry_run_outputs(view.model_dump(mode="json"))

    section.try_button.click(
        try_reward,
        inputs=inputs,
        outputs=[section.try_status, section.try_table, section.try_images],
        api_name="try_reward",
    )


def dry_run_outputs(view: dict[str, Any]) -> list[Any]:
    if view["status"] in ("queued", "running"):
        minutes = DRY_RUN_TIMEOUT_S / 60
        message = (
            f"**No result yet:** the dry run is still {view['status']} after {minutes:g} minutes. Is a worker "
            "running? (`adrpo serve` starts one; it runs one task at a time, so a training job runs first.)"
        )
        return [message, gr.update(visible=False), gr.update(visible=False)]
    if view["status"] != "succeeded":
        message = R.in_words(view.get("error") or "no reason recorded")
        return [f"**The dry run failed:** {message}", gr.update(visible=False), gr.update(visible=False)]
    columns, table = R.dry_run_table(view)
    images = [
        (s["image_path"], f"#{s['index']}: total {s['total']:.3f}") for s in view["samples"] if s.get("image_path")
    ]
    status = (
        f"Prompt **{view['prompt']!r}**: {len(table)} reference samples, each reward's score and the weighted total."
    )
    return [
        status,
        gr.update(value={"headers": columns, "data": table}, headers=columns, visible=True),
        gr.update(value=images, visible=bool(images)),
    ]
