"""The Launch form's reward rows as data: rows <-> the config's ``rewards:`` list, with no Gradio import.

A row is ``{"id", "name", "model", "weight", "options", "given"}`` (``given``: the options the config it
was read from wrote out). ``id`` is the row's identity in the form (a
new reward in a row is a new row; the rows redraw only when ids or names change), never part of the
config. ``options`` holds the options the person set; the reward's schema
(:func:`adrpo_engine.rewards.schema.describe_options`) gives the fields, defaults, ranges and help.
"""

from __future__ import annotations

import uuid
from typing import Any

from adrpo_engine.kinds import KINDS
from adrpo_engine.rewards import NEEDS, REMOTE_ENTRY, RegisteredReward, registered_reward
from adrpo_engine.rewards.remote import is_remote
from adrpo_engine.rewards.schema import OptionField, describe_options, model_suggestions, reward_groups

REMOTE_PLACEHOLDER = "remote:http://127.0.0.1:8000/score"


def row_id() -> str:
    return uuid.uuid4().hex[:10]


def rows_from_specs(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Form rows showing a config's ``rewards`` (validated dicts or raw ones)."""
    rows = []
    for spec in specs:
        spec = dict(spec)
        options = dict(spec.get("options") or {})
        model = spec.get("model") or options.pop("model", None)
        rows.append(
            {
                "id": row_id(),
                "name": spec.get("name", ""),
                "model": model or "",
                "weight": float(spec.get("weight", 1.0)),
                "options": options,
                "given": sorted(options),
            }
        )
    return rows


def specs_from_rows(rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The config's ``rewards`` list of the form's rows (unvalidated: the schema names a bad field).
    An option left empty is left out; so is one at its default (the option fields report their value
    when drawn) unless the config the row came from wrote it: the config says what was said."""
    specs = []
    for row in rows or []:
        spec: dict[str, Any] = {"name": str(row.get("name") or "").strip()}
        defaults = {field.name: field.default for field in option_fields(spec["name"]) if not field.required}
        given = set(row.get("given") or ())  # options the config it came from wrote out: kept as written
        model = str(row.get("model") or "").strip()
        if model:
            spec["model"] = model
        weight = row.get("weight")
        spec["weight"] = 1.0 if weight is None or weight == "" else weight
        options = {
            key: value
            for key, value in (row.get("options") or {}).items()
            if value is not None
            and value != ""
            and (key in given or not (key in defaults and _same(value, defaults[key])))
        }
        if options:
            spec["options"] = options
        specs.append(spec)
    return specs


def _same(value: Any, default: Any) -> bool:
    # a number box gives 16.0 for an int option's 16; True is not 1 here
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    return value == default


def reward_of(name: str) -> RegisteredReward | None:
    return registered_reward(name) if name else None


def new_row(name: str, weight: float = 1.0) -> dict[str, Any]:
    """A row for reward ``name`` with its default model (or the first suggested one) and no options set."""
    registered = reward_of(name)
    model = ""
    if registered is not None and registered.takes_model:
        suggestions = model_suggestions(registered)
        model = registered.default_model or (suggestions[0] if suggestions else "")
    return {"id": row_id(), "name": name, "model": model, "weight": weight, "options": {}, "given": []}


def first_reward(job_kind: str) -> str:
    groups = reward_groups(job_kind)
    return groups[0][1][0].name if groups else ""


def reward_choices(job_kind: str, current: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(label, name) of the rewards for ``job_kind``, grouped by what they need ("Rule (no model) ·
    length", ...). The remote entry is offered as a URL to edit; a user function is typed (where the
    service allows its module, :func:`name_help`). Names already in a row stay choosable."""
    choices = []
    for label, rewards in reward_groups(job_kind):
        for reward in rewards:
            name = REMOTE_PLACEHOLDER if reward.name == REMOTE_ENTRY else reward.name
            choices.append((f"{label} · {name}", name))
    known = {name for _, name in choices}
    for name in current:
        if name and name not in known:
            what = NEEDS["remote"] if is_remote(name) else NEEDS["user_function"]
            choices.append((f"{what} · {name}", name))
            known.add(name)
    return choices


def name_help(user_modules: tuple[str, ...]) -> str:
    """The reward field's help line: user functions are offered only where the operator allows modules."""
    if not user_modules:
        return "Grouped by what it needs. (User functions are off for jobs submitted here.)"
    return f"Grouped by what it needs; or type 'module:function' of {', '.join(user_modules)}."


def row_summary(name: str, job_kind: str) -> str:
    """One line under a row: what the reward does and needs, or why it does not fit the job."""
    registered = reward_of(name)
    if registered is None:
        if ":" in name:
            return "*A user function `module:function`, imported on the worker (modules the operator allows).*"
        return ""
    expected = KINDS[job_kind].reward_kind if job_kind in KINDS else None
    fit = "" if registered.usable_for(expected or "") else f" — **scores {registered.kind}s: not for this job**"
    what = NEEDS[registered.needs].lower()
    if registered.needs == "remote":
        return f"*{registered.summary}* ({what}: the name is the server's URL; hosts the operator allows){fit}"
    return f"*{registered.summary}* ({what}){fit}"


def option_fields(name: str) -> list[OptionField]:
    registered = reward_of(name)
    return describe_options(registered) if registered is not None else []


def models_for(name: str) -> list[str]:
    """The suggestions of a row's model field ([] = the reward takes no model: the field is hidden)."""
    registered = reward_of(name)
    return model_suggestions(registered) if registered is not None and registered.takes_model else []


def layout_of(rows: list[dict[str, Any]] | None, job_kind: str) -> tuple[Any, ...]:
    """What the rows are drawn from: they redraw only when this changes (not on every keystroke)."""
    return (job_kind, tuple((row.get("id"), row.get("name")) for row in rows or []))


def replace_row(rows: list[dict[str, Any]], row_key: str, **changes: Any) -> list[dict[str, Any]]:
    return [{**row, **changes} if row.get("id") == row_key else row for row in rows]


def set_option(rows: list[dict[str, Any]], row_key: str, option: str, value: Any) -> list[dict[str, Any]]:
    return [
        {**row, "options": {**(row.get("options") or {}), option: value}} if row.get("id") == row_key else row
        for row in rows
    ]


def rename_row(rows: list[dict[str, Any]], row_key: str, name: str) -> list[dict[str, Any]]:
    """Another reward in a row: a fresh row (its model and options do not carry over), the weight kept.
    The same reward picked again changes nothing (no redraw under the cursor)."""
    return [
        new_row(name or "", row.get("weight", 1.0)) if row.get("id") == row_key and row.get("name") != name else row
        for row in rows
    ]


def row_label(path: str) -> str | None:
    """``rewards.1.model`` -> "Reward 2 · model" (the form's name of a reward row's field), else None."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "rewards" or not parts[1].isdigit():
        return None
    rest = ".".join(parts[2:])
    where = {"name": "reward", "options": "options"}.get(rest, rest.removeprefix("options.") or "reward")
    return f"Reward {int(parts[1]) + 1} · {where}"


def in_words(message: str) -> str:
    """A refusal's lines with a reward row's path as the form names it (``rewards.1.model: ...`` ->
    ``Reward 2 · model: ...``); other lines unchanged."""
    lines = []
    for line in message.splitlines():
        path, sep, what = line.partition(": ")
        label = row_label(path) if sep else None
        lines.append(f"{label}: {what}" if label else line)
    return "\n".join(lines)


def dry_run_table(view: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a finished dry run: sample, each reward's score, the weighted total."""
    rewards = view.get("rewards", [])
    labels = [row["label"] for row in rewards]
    weights = {row["label"]: row["weight"] for row in rewards}
    columns = ["#", "sample", *[f"{label} (x{weights[label]:g})" for label in labels], "weighted total"]
    table = []
    for sample in view.get("samples", []):
        shown = sample.get("text") or ""
        if sample.get("image_path"):
            shown = (sample["image_path"].rsplit("/", 1)[-1] + (f" ({shown})" if shown else "")).strip()
        scores = [round(sample["scores"][label], 4) for label in labels]
        table.append([sample["index"], shown, *scores, round(sample["total"], 4)])
    return columns, table
