"""The Launch form as data: form values <-> job-config dicts, with no Gradio import.

The form edits the knobs a person tunes (model, reward rows, prompts, algorithm, beta0, clipping,
steps, lr, group size, LoRA, seed); the reward rows are data of their own (``app.ui.reward_specs``).
Everything else comes from a *base* config, the chosen demo preset's, so a preset's hidden settings
(sample_every, flow.sample_steps, ...) survive an edit of the form. The schema stays the one in
``adrpo_engine.config``: this module only maps fields, and validation errors are the schema's own
messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrpo_engine.config import ConfigError, JobConfig, validate_config
from adrpo_engine.config_io import apply_overrides, parse_override
from adrpo_engine.kinds import ALGORITHM_NAMES, DEFAULT_KIND, KINDS, builtin_models, get_kind
from adrpo_engine.presets import PRESETS
from adrpo_engine.rewards.schema import check_reward_rows
from adrpo_engine.trackers import TRACKERS, missing_tracker_package

from .reward_specs import row_label, rows_from_specs, specs_from_rows

CUSTOM = "custom"  # the preset choice meaning "start from the kind's defaults"

KIND_LABELS = {name: spec.label for name, spec in KINDS.items()}
ALGORITHM_LABELS = {
    "adrpo": "ADRPO (adaptive beta)",
    "fixed": "Fixed beta (baseline)",
    "orw": "ORW-CFM-W2 (flow baseline)",
    "dpo": "Diffusion-DPO (flow baseline, offline preference pairs)",
}
DPO_PAIR_MODES = (("best vs worst of each group", "best_worst"), ("every pair above the margin", "all"))
PROMPT_SOURCES = ("text", "file", "dataset")
# What an empty A_min means, per kind and algorithm (the schema's default: -beta0, or -beta0/2 where the
# loss needs a_min > -beta0).
A_MIN_PLACEHOLDER = (
    "empty = −β₀ (−β₀/2 for "
    + ", ".join(
        f"{ALGORITHM_NAMES[algorithm]} {spec.name}"
        for spec in KINDS.values()
        for algorithm in sorted(spec.bounded_a_min)
    )
    + ")"
)


# Order of the form's fields: the Launch tab lays out one component per id, and the handlers take
# the values in this order (the LLaMA-Factory pattern: one loop for fill, preview and submit).
FIELDS = (
    "preset",
    "name",
    "kind",
    "model",
    "rewards",
    "prompt_source",
    "prompt_texts",
    "prompt_file",
    "dataset",
    "dataset_split",
    "dataset_column",
    "algorithm",
    "beta0",
    "a_min",
    "a_max",
    "dpo_beta",
    "dpo_pairs",
    "dpo_refresh_every",
    "steps",
    "lr",
    "group_size",
    "prompts_per_step",
    "lora_rank",
    "lora_targets",
    "seed",
    "report_to",
    "extra",
    "clip_files",
    "clip_answers",
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
    source = "dataset" if prompts.dataset else "file" if prompts.file else "clips" if prompts.rows else "text"
    return {
        "preset": preset,
        "name": job.name,
        "kind": job.kind,
        "model": job.model.name_or_path,
        "rewards": rows_from_specs([spec.model_dump(mode="json", exclude_none=True) for spec in job.rewards]),
        "prompt_source": source,
        "prompt_texts": "\n".join(prompts.texts or [str(row.get(prompts.column, "")) for row in prompts.rows]),
        "prompt_file": prompts.file or "",
        "dataset": prompts.dataset or "",
        "dataset_split": prompts.split,
        "dataset_column": prompts.column,
        "algorithm": job.algorithm,
        "beta0": job.beta0,
        # Text, not numbers: empty means "the default" (a number box would send 0, i.e. fixed beta).
        "a_min": "" if job.a_min is None else str(job.a_min),
        "a_max": "" if job.a_max is None else str(job.a_max),
        "dpo_beta": job.flow.dpo_beta,
        "dpo_pairs": job.flow.dpo_pairs,
        "dpo_refresh_every": job.flow.dpo_refresh_every,
        "steps": job.steps,
        "lr": job.lr,
        "group_size": job.group_size,
        "prompts_per_step": job.prompts_per_step,
        "lora_rank": job.lora.rank,
        "lora_targets": ", ".join(job.lora.target_modules or []),
        "seed": job.seed,
        "report_to": list(job.report_to),
        "extra": "",
        "clip_files": None,  # uploaded clips cannot be shown again: a new job uploads its own
        "clip_answers": "\n".join(str(row.get("answer", "")) for row in prompts.rows),
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
    if data["algorithm"] == "dpo":
        # DPO's own options live in the flow section; other algorithms keep the base config's untouched.
        flow = dict(data.get("flow") or {})
        flow["dpo_beta"] = _number(values.get("dpo_beta"), "flow.dpo_beta")
        flow["dpo_pairs"] = _text(values.get("dpo_pairs")) or "best_worst"
        flow["dpo_refresh_every"] = _integer(values.get("dpo_refresh_every"), "flow.dpo_refresh_every")
        data["flow"] = flow
    lora = dict(data.get("lora") or {})
    lora["rank"] = _integer(values.get("lora_rank"), "lora.rank")
    targets = [t.strip() for t in (_text(values.get("lora_targets")) or "").replace("\n", ",").split(",") if t.strip()]
    lora["target_modules"] = targets or None
    data["lora"] = lora
    if values.get("report_to") is not None:
        data["report_to"] = list(values["report_to"])
    return apply_overrides(data, parse_extra_overrides(values.get("extra") or ""))


def tracker_choices() -> list[tuple[str, str]]:
    """(label, name) of every tracker; one whose package this server lacks says so (choosing it is refused)."""
    return [(name if missing_tracker_package(name) is None else f"{name} (not installed)", name) for name in TRACKERS]


def preview(values: dict[str, Any], base: dict[str, Any] | None = None) -> FormPreview:
    """Validate the form: the YAML of the exact config the job will run, or the schema's message."""
    try:
        job: JobConfig = validate_config(config_from_form(values, base))
        # the submission's own row checks: kind, option schema, model architecture, weights
        # (a local folder is read only at submission, after the service's path policy)
        check_reward_rows(job.rewards, job.kind, read_local=False)
        check_reward_rows(job.eval.rewards, job.kind, section="eval.rewards", read_local=False)
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
        section = {
            "dataset": _text(values.get("dataset")) or None,
            "split": _text(values.get("dataset_split")) or "train",
            "column": _text(values.get("dataset_column")) or "prompt",
        }
    elif source == "file":
        path = _text(values.get("prompt_file"))
        if not path:
            raise ConfigError(
                "prompts.file: give a path on the worker or builtin:NAME, or upload a file "
                "(its prompts are copied into the text box)"
            )
        section = {"file": path, "column": _text(values.get("dataset_column")) or "prompt"}
    elif source == "clips":
        section = {"rows": clip_rows(values)}
    else:
        texts = [line.strip() for line in (values.get("prompt_texts") or "").splitlines() if line.strip()]
        section = {"texts": texts}
    return {**section, **keep}


def clip_paths(values: dict[str, Any]) -> list[Path]:
    """The clips uploaded in the form (Gradio's temporary copies), in upload order."""
    files = values.get("clip_files") or []
    files = files if isinstance(files, list) else [files]
    return [Path(getattr(item, "name", item)) for item in files if item]


def clip_rows(values: dict[str, Any]) -> list[dict[str, Any]]:
    """An audio job's inline rows from the form: clip k with question k (or the one question for all) and
    answer k (or none). The clip is named by its file name: the upload that travels with the job."""
    clips = clip_paths(values)
    if not clips:
        raise ConfigError("prompts.rows: upload one or more audio clips (WAV, FLAC, ...)")
    names = [clip.name for clip in clips]
    if len(set(names)) != len(names):
        raise ConfigError("prompts.rows: two uploaded clips have the same file name")
    questions = [line.strip() for line in (values.get("prompt_texts") or "").splitlines() if line.strip()]
    answers = [line.strip() for line in (values.get("clip_answers") or "").splitlines() if line.strip()]
    if len(questions) not in (1, len(clips)):
        raise ConfigError(
            f"prompts.texts: give one question for every clip, or one for all ({len(clips)} clips, "
            f"{len(questions)} questions)"
        )
    if answers and len(answers) != len(clips):
        raise ConfigError(f"prompts.rows: give one answer per clip ({len(clips)} clips, {len(answers)} answers)")
    rows = []
    for index, name in enumerate(names):
        row: dict[str, Any] = {"prompt": questions[index if len(questions) > 1 else 0], "audio": name}
        if answers:
            row["answer"] = answers[index]
        rows.append(row)
    return rows


def clip_uploads(values: dict[str, Any]) -> dict[str, bytes] | None:
    """The uploaded clips' bytes by file name (what ``JobService.submit(uploads=...)`` stores), or None."""
    if (values.get("prompt_source") or "text") != "clips":
        return None
    return {path.name: path.read_bytes() for path in clip_paths(values)} or None


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


# ---------------------------------------------------------------------------------------------------
# Validation messages at the field they are about, in words (the exact config key kept as the detail)

FIELD_LABELS = {
    "preset": "Preset",
    "name": "Run name",
    "kind": "Model kind",
    "model": "Base model",
    "rewards": "Rewards",
    "prompt_source": "Prompts",
    "prompt_texts": "Prompts",
    "prompt_file": "Prompt file",
    "dataset": "Dataset",
    "dataset_split": "Split",
    "dataset_column": "Prompt column",
    "algorithm": "Algorithm",
    "beta0": "β₀",
    "a_min": "A_min",
    "a_max": "A_max",
    "steps": "Steps",
    "lr": "Learning rate",
    "group_size": "Group size",
    "prompts_per_step": "Prompts per step",
    "lora_rank": "LoRA rank",
    "lora_targets": "LoRA target modules",
    "seed": "Seed",
    "extra": "Advanced settings",
    "clip_files": "Audio clips",
    "clip_answers": "Answers",
}
# Config path (prefix) -> form field; the most specific prefix wins. Other paths belong to "extra".
CONFIG_PATH_FIELDS = {
    "model.name_or_path": "model",
    "model": "model",
    "rewards": "rewards",
    "prompts.texts": "prompt_texts",
    "prompts.file": "prompt_file",
    "prompts.dataset": "dataset",
    "prompts.split": "dataset_split",
    "prompts.column": "dataset_column",
    "prompts.rows": "clip_files",
    "prompts": "prompt_source",
    "lora.rank": "lora_rank",
    "lora.target_modules": "lora_targets",
    **{
        name: name
        for name in (
            "name",
            "kind",
            "algorithm",
            "beta0",
            "a_min",
            "a_max",
            "steps",
            "lr",
            "group_size",
            "prompts_per_step",
            "seed",
        )
    },
}
# Pydantic's phrases -> a person's ("{label} must be at least 1"); the first match wins.
_PHRASES = (
    (r"Input should be greater than or equal to (\S+)", "{label} must be at least {0}"),
    (r"Input should be greater than (\S+)", "{label} must be more than {0}"),
    (r"Input should be less than or equal to (\S+)", "{label} must be at most {0}"),
    (r"Input should be less than (\S+)", "{label} must be less than {0}"),
    (r"required field is missing|String should have at least 1 character", "{label} is required"),
    (r"unknown key(.*)", "{label}: not a setting of the job config{0}"),
    (r"expected a whole number|Input should be a valid integer", "{label} must be a whole number"),
    (r"expected a number|Input should be a valid number", "{label} must be a number"),
    (r"String should match pattern", "{label}: letters, digits, '.', '_' and '-' only, up to 64 characters"),
    (r"List should have at least (\d+) items?", "{label}: give at least {0}"),
    (r"Input should be (.+)", "{label} must be {0}"),
)


@dataclass(frozen=True)
class FieldError:
    """One validation problem: the form field it is about, the message in words, the exact line."""

    field: str
    message: str
    detail: str


def field_for_path(path: str) -> str:
    """The form field showing config key ``path`` (``rewards.0.name`` -> ``rewards``); else "extra"."""
    parts = path.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in CONFIG_PATH_FIELDS:
            return CONFIG_PATH_FIELDS[prefix]
    return "extra"


def field_errors(message: str) -> list[FieldError]:
    """Split a ConfigError/SubmissionError message (one ``path: what`` line per problem) by field."""
    import re

    found = []
    for line in (line.strip() for line in message.splitlines()):
        if not line:
            continue
        path, sep, what = line.partition(": ")
        if not sep or " " in path:
            path, what = "config", line
        if path == "config":
            # A check across fields ("a_min (0.5) must be <= a_max (0.1)") belongs to the first it names.
            named = re.match(r"[a-z_0-9.]+", what)
            path = named.group(0) if named and field_for_path(named.group(0)) != "extra" else "config"
        field = field_for_path(path) if path != "config" else "extra"
        label = row_label(path) or FIELD_LABELS.get(field, field)  # "Reward 2 · model"
        found.append(FieldError(field, _in_words(label, what), line))
    return found


def _in_words(label: str, what: str) -> str:
    import re

    bare = re.sub(r"\s*\(got .*\)$", "", what).strip()
    for pattern, template in _PHRASES:
        matched = re.match(pattern, bare)
        if matched:
            return template.format(*matched.groups(), label=label)
    return f"{label}: {bare}" if not bare.lower().startswith(label.lower()) else bare


# Prompt syntax of the built-in models, shown under the prompt field when one is chosen.
PROMPT_HELP = {
    "builtin:digits-flow": "builtin:digits-flow understands 'digit K' (K = 0…9) and 'any digit'.",
    "builtin:tiny-lm": "builtin:tiny-lm was pre-trained on topic lists: ask for a list of a topic, e.g. "
    "'List some fruits:' (the builtin:tiny-lm-task dataset has its prompts).",
    "builtin:tiny-sd3": "builtin:tiny-sd3 takes any short text (it is untrained: a plumbing test).",
}
PROMPT_INFO = "One prompt a line."


def prompt_help(model: str | None) -> str:
    return PROMPT_HELP.get(model or "", PROMPT_INFO)
