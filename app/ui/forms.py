"""The Launch form as data: form values <-> job-config dicts, with no Gradio import.

The form edits the knobs a person tunes (model, reward, prompts, algorithm, beta0, clipping, steps,
lr, group size, LoRA, seed). Everything else comes from a *base* config, the chosen demo preset's, so
a preset's hidden settings (sample_every, flow.sample_steps, ...) survive an edit of the form. The
schema stays the one in ``adrpo_engine.config``: this module only maps fields, and validation errors
are the schema's own messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrpo_engine.config import (
    ConfigError,
    JobConfig,
    apply_overrides,
    parse_override,
    validate_config,
)
from adrpo_engine.kinds import ALGORITHM_NAMES, DEFAULT_KIND, KINDS, builtin_models, get_kind
from adrpo_engine.presets import PRESETS
from adrpo_engine.rewards.schema import check_reward_rows

from .reward_specs import rows_from_specs, specs_from_rows

CUSTOM = "custom"  # the preset choice meaning "start from the kind's defaults"

KIND_LABELS = {name: spec.label for name, spec in KINDS.items()}
ALGORITHM_LABELS = {
    "adrpo": "ADRPO (adaptive beta)",
    "fixed": "Fixed beta (baseline)",
    "orw": "ORW-CFM-W2 (flow baseline)",
}
PROMPT_SOURCES = ("text", "file", "dataset")
# What an empty A_min means, per kind and algorithm (the schema's default: -beta0, or -beta0/2 where the
# loss needs a_min > -beta0).
A_MIN_PLACEHOLDER = "empty = −β₀ (−β₀/2 for " + ", ".join(
    f"{ALGORITHM_NAMES[algorithm]} {spec.name}" for spec in KINDS.values() for algorithm in sorted(spec.bounded_a_min)) + ")"


# Order of the form's fields: the Launch tab lays out one component per id, and the handlers take
# the values in this order (the LLaMA-Factory pattern: one loop for fill, preview and submit).
FIELDS = (
    "preset", "name", "kind", "model", "rewards",
    "prompt_source", "prompt_texts", "prompt_file", "dataset", "dataset_split", "dataset_column",
    "algorithm", "beta0", "a_min", "a_max", "steps", "lr", "group_size", "prompts_per_step",
    "lora_rank", "lora_targets", "seed", "extra",
)


@dataclass(frozen=True)
class FormPreview:
    """What the Launch tab shows beside the form: the exact config, or why there is none."""

    config: dict[str, Any] | None
    yaml_text: str
    error: str | None
    advisories: tuple[str, ...] = ()


def model_choices(kind: str) -> list[str]:
    """Models offered for ``kind``: the built-ins (they run on a laptop CPU), then every preset's model
    of that kind (hub ids the GPU presets use)."""
    choices = [model.name for model in builtin_models(kind)]
    for preset in PRESETS.values():
        if preset.config.get("kind") == kind:
            name = preset.config["model"]["name_or_path"]
            if name not in choices:
                choices.append(name)
    return choices


def preset_choices() -> list[tuple[str, str]]:
    """(label, name) pairs: demo presets first (they need no GPU), then GPU presets, then custom."""
    ordered = sorted(PRESETS.values(), key=lambda preset: (not preset.demo, preset.name))
    labels = [(f"{p.name} — {p.summary}", p.name) for p in ordered]
    return labels + [("custom — start from the defaults of the chosen model kind", CUSTOM)]


def base_config(preset: str | None, kind: str = DEFAULT_KIND) -> dict[str, Any]:
    """The config the form edits: the preset's, or the smallest valid config of ``kind``."""
    if preset and preset != CUSTOM:
        if preset not in PRESETS:
            raise ConfigError(f"preset: unknown preset {preset!r} (choose from {', '.join(sorted(PRESETS))})")
        return json.loads(json.dumps(PRESETS[preset].config))
    return {
        "name": "run",
        "kind": kind,
        "model": {"name_or_path": builtin_models(kind)[0].name},
        **get_kind(kind).starter_config(),
    }


def form_from_config(config: dict[str, Any], preset: str = CUSTOM) -> dict[str, Any]:
    """Form values showing ``config`` (defaults filled in by the schema)."""
    job = validate_config(config)
    prompts = job.prompts
    source = "dataset" if prompts.dataset else "file" if prompts.file else "text"
    return {
        "preset": preset,
        "name": job.name,
        "kind": job.kind,
        "model": job.model.name_or_path,
        "rewards": rows_from_specs([spec.model_dump(mode="json") for spec in job.rewards]),
        "prompt_source": source,
        "prompt_texts": "\n".join(prompts.texts),
        "prompt_file": prompts.file or "",
        "dataset": prompts.dataset or "",
        "dataset_split": prompts.split,
        "dataset_column": prompts.column,
        "algorithm": job.algorithm,
        "beta0": job.beta0,
        # Text, not numbers: empty means "the default" (a number box would send 0, i.e. fixed beta).
        "a_min": "" if job.a_min is None else str(job.a_min),
        "a_max": "" if job.a_max is None else str(job.a_max),
        "steps": job.steps,
        "lr": job.lr,
        "group_size": job.group_size,
        "prompts_per_step": job.prompts_per_step,
        "lora_rank": job.lora.rank,
        "lora_targets": ", ".join(job.lora.target_modules or []),
        "seed": job.seed,
        "extra": "",
    }


def config_from_form(values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config dict the form describes (not yet validated); ConfigError names an unreadable field."""
    kind = values.get("kind") or DEFAULT_KIND
    data = json.loads(json.dumps(base)) if base else base_config(values.get("preset"), kind)
    data["name"] = _text(values.get("name")) or data.get("name", "run")
    data["kind"] = kind
    data["model"] = {**data.get("model", {}), "name_or_path": _text(values.get("model"))}
    if values.get("rewards") is not None:
        data["rewards"] = specs_from_rows(values["rewards"])
    data["prompts"] = _prompts_section(values, data.get("prompts") or {})
    data["algorithm"] = values.get("algorithm") or "adrpo"
    for key in ("beta0", "lr"):
        data[key] = _number(values.get(key), key)
    for key in ("a_min", "a_max"):
        # Empty clipping bounds mean "the default, -beta0 / +beta0": leave them out of the config.
        data.pop(key, None)
        if _text(values.get(key)):
            data[key] = _number(_text(values[key]), key)
    for key in ("steps", "group_size", "prompts_per_step", "seed"):
        data[key] = _integer(values.get(key), key)
    lora = dict(data.get("lora") or {})
    lora["rank"] = _integer(values.get("lora_rank"), "lora.rank")
    targets = [t.strip() for t in (_text(values.get("lora_targets")) or "").replace("\n", ",").split(",") if t.strip()]
    lora["target_modules"] = targets or None
    data["lora"] = lora
    return apply_overrides(data, parse_extra_overrides(values.get("extra") or ""))


def preview(values: dict[str, Any], base: dict[str, Any] | None = None) -> FormPreview:
    """Validate the form: the YAML of the exact config the job will run, or the schema's message."""
    try:
        job: JobConfig = validate_config(config_from_form(values, base))
        check_reward_rows(job.rewards, job.kind)  # the submission's checks: kind, options, model architecture
    except ConfigError as error:
        return FormPreview(None, "", str(error))
    config = job.model_dump(mode="json")
    return FormPreview(config, job.to_yaml(), None, tuple(job.advisories()))


def parse_extra_overrides(text: str) -> dict[str, Any]:
    """``KEY=VALUE`` lines (the CLI's ``--set`` syntax) for keys the form does not show."""
    overrides = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = parse_override(line)
            overrides[key] = value
    return overrides


def read_prompt_file(path: str | Path, column: str = "prompt") -> list[str]:
    """Prompts of an uploaded .txt (one a line) or .jsonl file (``column`` of each row).

    The prompts go into the config inline, so the job does not depend on a file in the web process's
    upload folder (workers may run on other machines)."""
    path = Path(path)
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if path.suffix.lower() != ".jsonl":
        return lines
    prompts = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"prompts.file: line {number} of {path.name} is not JSON") from None
        if not isinstance(row, dict) or column not in row:
            raise ConfigError(f"prompts.file: line {number} of {path.name} has no {column!r} field")
        prompts.append(str(row[column]))
    return prompts


def _prompts_section(values: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    keep = {key: current[key] for key in ("limit", "eval") if key in current}
    source = values.get("prompt_source") or "text"
    if source == "dataset":
        section = {"dataset": _text(values.get("dataset")) or None,
                   "split": _text(values.get("dataset_split")) or "train",
                   "column": _text(values.get("dataset_column")) or "prompt"}
    elif source == "file":
        path = _text(values.get("prompt_file"))
        if not path:
            raise ConfigError("prompts.file: give a path on the worker or builtin:NAME, or upload a file "
                              "(its prompts are copied into the text box)")
        section = {"file": path, "column": _text(values.get("dataset_column")) or "prompt"}
    else:
        texts = [line.strip() for line in (values.get("prompt_texts") or "").splitlines() if line.strip()]
        section = {"texts": texts}
    return {**section, **keep}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _number(value: Any, field: str) -> Any:
    if value is None or value == "":
        raise ConfigError(f"{field}: required field is missing")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}: expected a number (got {value!r})") from None


def _integer(value: Any, field: str) -> Any:
    number = _number(value, field)
    if number != int(number):
        raise ConfigError(f"{field}: expected a whole number (got {value!r})")
    return int(number)
