"""The Launch form's reward rows as data: rows <-> the config's ``rewards:`` list, with no Gradio import.

A row is ``{"id", "name", "model", "weight", "options"}``. ``id`` is the row's identity in the form (a
new reward in a row is a new row; the component redraws only when ids or names change), never part of
the config. ``options`` holds the options the person set; the reward's schema
(:func:`adrpo_engine.rewards.schema.describe_options`) gives the fields, defaults and ranges.
"""

from __future__ import annotations

import uuid
from typing import Any

from adrpo_engine.rewards import NEEDS, REWARD_KIND_OF_JOB, RegisteredReward, registered_reward
from adrpo_engine.rewards.schema import OptionField, describe_options, model_suggestions, reward_groups

USER_FUNCTION_HINT = "module:function"


def row_id() -> str:
    return uuid.uuid4().hex[:10]


def rows_from_specs(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Form rows showing a config's ``rewards`` (validated dicts or raw ones)."""
    rows = []
    for spec in specs:
        spec = dict(spec)
        options = dict(spec.get("options") or {})
        model = spec.get("model") or options.pop("model", None)
        rows.append({"id": row_id(), "name": spec.get("name", ""), "model": model or "",
                     "weight": float(spec.get("weight", 1.0)), "options": options})
    return rows


def specs_from_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The config's ``rewards`` list of the form's rows (unvalidated: the schema names a bad field)."""
    specs = []
    for row in rows or []:
        spec: dict[str, Any] = {"name": str(row.get("name") or "").strip()}
        model = str(row.get("model") or "").strip()
        if model:
            spec["model"] = model
        weight = row.get("weight")
        spec["weight"] = 1.0 if weight is None or weight == "" else weight
        options = {key: value for key, value in (row.get("options") or {}).items() if value is not None and value != ""}
        if options:
            spec["options"] = options
        specs.append(spec)
    return specs


def new_row(name: str, weight: float = 1.0) -> dict[str, Any]:
    """A row for reward ``name`` with its default model (or the first suggested one) and no options set."""
    registered = registered_reward(name)
    model = ""
    if registered is not None and registered.takes_model:
        suggestions = model_suggestions(registered.needs)
        model = registered.default_model or (suggestions[0] if suggestions else "")
    return {"id": row_id(), "name": name, "model": model, "weight": weight, "options": {}}


def first_reward(job_kind: str) -> str:
    groups = reward_groups(job_kind)
    return groups[0][1][0].name if groups else ""


def reward_choices(job_kind: str, current: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(label, name) of the rewards for ``job_kind``, grouped by what they need ("Rule · length", ...);
    names already in a row (e.g. a user function) stay choosable."""
    choices = [(f"{label} · {reward.name}", reward.name) for label, rewards in reward_groups(job_kind) for reward in rewards]
    known = {name for _, name in choices}
    for name in current:
        if name and name not in known:
            choices.append((f"{NEEDS['user_function']} · {name}", name))
            known.add(name)
    return choices


def reward_of(name: str) -> RegisteredReward | None:
    return registered_reward(name) if name else None


def row_summary(name: str, job_kind: str) -> str:
    """One line under a row: what the reward does and needs, or why it does not fit the job."""
    registered = reward_of(name)
    if registered is None:
        return "A user function `module:function`, imported on the worker." if ":" in name else ""
    expected = REWARD_KIND_OF_JOB.get(job_kind)
    fit = "" if registered.kind == expected else f" — **scores {registered.kind}s: not for a {job_kind} job**"
    return f"*{registered.summary}* ({NEEDS[registered.needs].lower()}){fit}"


def option_fields(name: str) -> list[OptionField]:
    registered = reward_of(name)
    return describe_options(registered) if registered is not None else []


def models_for(name: str) -> list[str]:
    registered = reward_of(name)
    return model_suggestions(registered.needs) if registered is not None and registered.takes_model else []


def layout_of(rows: list[dict[str, Any]], job_kind: str) -> tuple[Any, ...]:
    """What the rows component draws from: it redraws only when this changes (not on every keystroke)."""
    return (job_kind, tuple((row.get("id"), row.get("name")) for row in rows or []))


def replace_row(rows: list[dict[str, Any]], row_key: str, **changes: Any) -> list[dict[str, Any]]:
    return [{**row, **changes} if row.get("id") == row_key else row for row in rows]


def set_option(rows: list[dict[str, Any]], row_key: str, option: str, value: Any) -> list[dict[str, Any]]:
    return [{**row, "options": {**(row.get("options") or {}), option: value}} if row.get("id") == row_key else row
            for row in rows]


def dry_run_table(view: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a finished dry run: sample, each reward's score, the weighted total."""
    labels = [row["label"] for row in view.get("rewards", [])]
    weights = {row["label"]: row["weight"] for row in view.get("rewards", [])}
    columns = ["#", "sample", *[f"{label} (x{weights[label]:g})" for label in labels], "weighted total"]
    table = []
    for sample in view.get("samples", []):
        shown = sample.get("text") if sample.get("text") is not None else (sample.get("image_path") or "").rsplit("/", 1)[-1]
        table.append([sample["index"], shown, *[round(sample["scores"][label], 4) for label in labels],
                      round(sample["total"], 4)])
    return columns, table
