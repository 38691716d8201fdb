"""docs/config.md, generated from the schema in ``config`` so it cannot drift:
``python -m adrpo_engine.config_docs > docs/config.md`` (a test checks the file is current)."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from .config import JobConfig, RewardSpec


def _sections(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """The nested sections of ``model`` (``model``, ``lora``, ``prompts``, one per kind ...), in schema order."""
    return [
        (name, info.annotation)
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    ]


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{arg}`" for arg in args)
    if args and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return " or ".join(_type_name(arg) for arg in rest) + " or null"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def _section_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            continue
        default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
        limits = [
            f"{sym} {getattr(m, attr)}"
            for m in info.metadata
            for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if hasattr(m, attr)
        ]
        allowed = ", ".join(limits)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        choices = extra.get("enum")
        kind = "one of " + ", ".join(f"`{c}`" for c in choices) if isinstance(choices, list) else _type_name(annotation)
        rows.append(f"| `{prefix}{name}` | {kind} | `{default}` | {allowed} | {info.description or ''} |")
    return rows


def config_reference_markdown() -> str:
    """The job-config reference (docs/config.md), generated from the schema so it cannot drift."""
    lines = [
        "# Job config reference",
        "",
        "Generated from `adrpo_engine/config.py` (`python -m adrpo_engine.config_docs > docs/config.md`).",
        "Every key can be set from the CLI with `--set KEY=VALUE` (dotted keys for sections) and in the",
        "studio's form; unknown keys are errors.",
        "",
        "| key | type | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += _section_rows(JobConfig, "")
    for section, model in _sections(JobConfig):
        lines += _section_rows(model, f"{section}.")
    lines += ["", "`rewards` is a list of `{name, model, weight, options}`:", ""]
    lines += ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    lines += _section_rows(RewardSpec, "rewards[].")
    from .rewards.schema import rewards_reference_markdown  # the registry imports the config module

    lines.append(rewards_reference_markdown().rstrip("\n"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(config_reference_markdown(), end="")
