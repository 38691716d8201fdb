"""Checks a submission needs beyond the config schema: names the schema cannot know (presets, built-in
models and prompt sources, registered rewards), path tricks in names, oversized payloads, no prompts.

Every failure is a :class:`SubmissionError` whose ``str()`` is one line naming the field and what is allowed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from adrpo_engine import hub
from adrpo_engine.config import NAME_PATTERN, ConfigError, JobConfig, validate_config
from adrpo_engine.config_io import apply_overrides
from adrpo_engine.kinds import BUILTIN_PREFIX, PROMPT_SOURCES, builtin_model_of, get_kind, load_target
from adrpo_engine.presets import PRESETS
from adrpo_engine.sweep import SweepJob, expand_sweep

from .inputs import SubmissionError, check_strict_types, check_tree, looks_like_path
from .policy import check_files_opened_by_validation, check_policy

# A hub id: "name" or "org/name" of letters, digits, '-', '_', '.', without '..' or '--' tricks.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
MAX_SUBMISSION_BYTES = 256 * 1024
MAX_INLINE_PROMPTS = 10_000
MAX_OVERRIDES = 200


def from_config_error(error: ConfigError) -> SubmissionError:
    """The engine's (possibly multi-line, 'field: message' per line) error as one SubmissionError."""
    lines = [line for line in str(error).splitlines() if line.strip()] or ["config: invalid"]
    field, _, message = lines[0].partition(": ")
    if not message:
        field, message = "config", field
    if field == "config":
        # Cross-field checks have no location; they start with the key they are about ("a_min (0.5) must ...").
        first_word = re.split(r"[\s(]", message, maxsplit=1)[0]
        if first_word in JobConfig.model_fields:
            field = first_word
    rest = "; ".join(lines[1:])
    return SubmissionError(field, message + (f"; {rest}" if rest else ""))


def resolve_submission(
    config: dict[str, Any] | None, preset: str | None, overrides: dict[str, Any] | None, policy: Any = None
) -> JobConfig:
    """The validated JobConfig of a submission (a full config, or a preset plus dotted overrides).
    ``policy`` (a :class:`worker.policy.Policy`) is what the service opens to API/studio jobs."""
    if (config is None) == (preset is None):
        raise SubmissionError("config", "give either a full job config or a preset name (not both)")
    # Shape first (depth, text), before anything walks the payload recursively or stores it.
    check_tree(config)
    check_tree(overrides)
    _check_size(config if config is not None else {"preset": preset, "overrides": overrides})
    if preset is not None:
        base = _preset_base(preset)
        if overrides is not None and not isinstance(overrides, dict):
            raise SubmissionError("overrides", "expected a mapping of dotted keys to values")
        if overrides and len(overrides) > MAX_OVERRIDES:
            raise SubmissionError("overrides", f"at most {MAX_OVERRIDES} keys")
        data = _apply(base, overrides or {})
    else:
        if not isinstance(config, dict):
            raise SubmissionError("config", f"expected a mapping of keys to values (got {type(config).__name__})")
        if overrides is not None and not isinstance(overrides, dict):
            raise SubmissionError("overrides", "expected a mapping of dotted keys to values")
        data = _apply(config, overrides or {})
    check_strict_types(data, JobConfig)
    check_files_opened_by_validation(data, None, policy)
    try:
        job = validate_config(data)
    except ConfigError as error:
        raise from_config_error(error) from None
    # The policy first: check_job reads a local reward model's config.json (its architecture), which it
    # must do only for paths the service may read, or its message would tell what lies outside the roots.
    if policy is not None:
        check_policy(job, policy)
    check_job(job)
    return job


def _preset_base(preset: Any) -> dict[str, Any]:
    if not isinstance(preset, str) or preset not in PRESETS:
        raise SubmissionError("preset", f"unknown preset {preset!r} (choose from {', '.join(sorted(PRESETS))})")
    return PRESETS[preset].config


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key in overrides:
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
            raise SubmissionError("overrides", f"bad key {key!r}: expected a dotted key such as lora.rank")
    try:
        return apply_overrides(base, overrides)
    except ConfigError as error:
        raise from_config_error(error) from None


def _check_size(payload: Any) -> None:
    try:
        size = len(json.dumps(payload, default=str))
    except (TypeError, ValueError):
        raise SubmissionError("config", "must be JSON-serialisable") from None
    if size > MAX_SUBMISSION_BYTES:
        raise SubmissionError("config", f"submission is {size} bytes; at most {MAX_SUBMISSION_BYTES}")


def check_job(job: JobConfig) -> None:
    """Raise SubmissionError for a schema-valid config the workers could not run."""
    _check_model(job)
    _check_rewards(job)
    _check_prompts(job)
    spec = get_kind(job.kind)
    if spec.input_check is not None:  # e.g. an audio job's clips: format, sample rate, duration
        try:
            load_target(spec.input_check)(job)
        except ConfigError as error:
            raise from_config_error(error) from None


def _check_model(job: JobConfig) -> None:
    name = job.model.name_or_path
    if name.startswith(BUILTIN_PREFIX):
        try:
            builtin_model_of(name, job.kind)
        except ConfigError as error:
            raise from_config_error(error) from None
        return
    if looks_like_path(name):
        _reject_path_tricks("model.name_or_path", name)
        return
    if not HUB_ID.fullmatch(name) or ".." in name or "--" in name:
        raise SubmissionError(
            "model.name_or_path",
            f"{name!r} is neither a built-in model, a hub id like 'org/name', nor an absolute local path",
        )
    # Refused now only when the hub answers that it does not know the id; offline (or unreachable) the
    # job is accepted and its worker fails in seconds with one line if the id is not cached there either.
    if hub.probe(name, job.model.revision) is hub.HubAnswer.MISSING:
        raise SubmissionError("model.name_or_path", hub.missing_message(name, job.model.revision))


def _check_rewards(job: JobConfig) -> None:
    """The engine's reward-row checks (kind, option schema, model architecture where it can be read, weights),
    then the rows' remote hosts and model names. Whether a user function may be imported is the policy's."""
    from adrpo_engine.rewards.remote import is_remote
    from adrpo_engine.rewards.schema import RewardRowError, check_reward_rows

    for section, specs in (("rewards", job.rewards), ("eval.rewards", job.eval.rewards)):
        try:
            check_reward_rows(specs, job.kind, section=section)
        except RewardRowError as error:
            raise SubmissionError(error.field, str(error).removeprefix(f"{error.field}: ")) from None
        for index, spec in enumerate(specs):  # eval-only rewards run on the worker as well
            if is_remote(spec.name):
                check_remote_reward_host(f"{section}.{index}.name", spec.name)
            if spec.model is not None:
                _check_reward_model(f"{section}.{index}.model", spec.name, spec.model)


def _check_reward_model(field: str, reward: str, model: str) -> None:
    """A row's model: a built-in name (checked by the engine), an absolute path, or a hub id the hub knows."""
    from adrpo_engine.rewards import registered_reward

    if model.startswith(BUILTIN_PREFIX):
        return
    if looks_like_path(model):
        _reject_path_tricks(field, model)
        return
    if HUB_ID.fullmatch(model) and ".." not in model and "--" not in model:
        if hub.probe(model) is hub.HubAnswer.MISSING:
            raise SubmissionError(field, hub.missing_message(model, None))
        return
    registered = registered_reward(reward)
    if registered is None or registered.checks_architecture:  # hpsv2 names a file: 'org/repo/filename'
        raise SubmissionError(
            field, f"{model!r} is neither a built-in model, a hub id like 'org/name', nor an absolute local path"
        )


def check_remote_reward_host(field: str, name: str, allowed: frozenset[str] | None = None) -> None:
    """A remote reward's URL comes from whoever submits the job: the worker would POST samples to it (a
    request forger's dream). Only hosts the operator listed in ADRPO_REMOTE_REWARD_HOSTS are accepted."""
    from adrpo_engine.rewards.remote import remote_host

    from .settings import Settings

    try:
        host = remote_host(name)
    except ConfigError as error:
        raise SubmissionError(field, str(error).removeprefix("rewards: ")) from None
    allowed = Settings().remote_reward_allowlist if allowed is None else allowed
    if host.lower() not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise SubmissionError(
            field,
            f"remote reward host {host} is not allowed for submitted jobs (the operator's "
            f"ADRPO_REMOTE_REWARD_HOSTS lists: {listed})",
        )


def _check_prompts(job: JobConfig) -> None:
    prompts = job.prompts
    if not (prompts.texts or prompts.rows or prompts.file or prompts.dataset):
        raise SubmissionError(
            "prompts", "the job has no prompts: give prompts.texts, prompts.rows, prompts.file or prompts.dataset"
        )
    if len(prompts.rows) > MAX_INLINE_PROMPTS:
        raise SubmissionError("prompts.rows", f"at most {MAX_INLINE_PROMPTS} inline rows (use prompts.file)")
    for index, row in enumerate(prompts.rows):
        if prompts.column not in row or not isinstance(row[prompts.column], str):
            raise SubmissionError(f"prompts.rows.{index}", f"each row needs a text {prompts.column!r} column")
    if len(prompts.texts) > MAX_INLINE_PROMPTS:
        raise SubmissionError("prompts.texts", f"at most {MAX_INLINE_PROMPTS} inline prompts (use prompts.file)")
    if prompts.texts and not any(text.strip() for text in prompts.texts):
        raise SubmissionError("prompts.texts", "every prompt is empty")
    for field, value in (("prompts.file", prompts.file), ("prompts.dataset", prompts.dataset)):
        if value is None:
            continue
        if value.startswith(BUILTIN_PREFIX):
            if value not in PROMPT_SOURCES:
                raise SubmissionError(
                    field, f"unknown built-in source {value!r} (choose from {', '.join(PROMPT_SOURCES)})"
                )
        elif looks_like_path(value) or field == "prompts.file":
            _reject_path_tricks(field, value)


def _reject_path_tricks(field: str, value: str) -> None:
    parts = re.split(r"[\\/]", value)
    if ".." in parts or value.startswith("~") or "\x00" in value:
        raise SubmissionError(field, f"{value!r}: '..', '~' and NUL are not allowed in paths; give an absolute path")
    if not value.startswith("/"):
        raise SubmissionError(
            field, f"{value!r}: local paths must be absolute (the worker's working directory is not yours)"
        )


@dataclass(frozen=True)
class PlannedSweep:
    name: str
    grid: dict[str, list[Any]]
    seeds: list[int]
    jobs: list[SweepJob]


def resolve_sweep(
    config: dict[str, Any] | None,
    preset: str | None,
    overrides: dict[str, Any] | None,
    grid: Any,
    seeds: Any,
    name: Any = None,
    policy: Any = None,
) -> PlannedSweep:
    """Every job of a sweep, validated like single submissions (``policy`` included), before any is
    created; one bad grid point refuses the whole sweep."""
    if (config is None) == (preset is None):
        raise SubmissionError("config", "give either a full job config or a preset name (not both)")
    check_tree(config)
    check_tree(overrides)
    check_tree(grid, "grid")
    _check_size({"config": config, "preset": preset, "overrides": overrides, "grid": grid, "seeds": seeds})
    if overrides is not None and not isinstance(overrides, dict):
        raise SubmissionError("overrides", "expected a mapping of dotted keys to values")
    if name is not None and (not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or len(name) > 40):
        raise SubmissionError("name", "letters, digits, '.', '_', '-', at most 40 characters")
    base = _preset_base(preset) if preset is not None else config
    if not isinstance(base, dict):
        raise SubmissionError("config", f"expected a mapping of keys to values (got {type(base).__name__})")
    check_files_opened_by_validation(_apply(base, overrides or {}), grid, policy)  # bad override keys named too
    try:
        jobs = expand_sweep(base, grid, seeds, overrides, name=name, extra={"eval.on_finish": True})
    except ConfigError as error:
        raise _sweep_error(error) from None
    for job in jobs:
        try:
            if policy is not None:
                check_policy(job.config, policy)
            check_job(job.config)
        except SubmissionError as error:
            where = ", ".join(f"{k}={v!r}" for k, v in job.params.items())
            raise SubmissionError("grid", f"grid point {where}: {error} (no job was created)") from None
    default_name = str(apply_overrides(base, overrides or {}).get("name") or "sweep")[:40]
    return PlannedSweep(name=name or default_name, grid=dict(grid), seeds=list(seeds), jobs=jobs)


def _sweep_error(error: ConfigError) -> SubmissionError:
    text = str(error)
    field, _, message = text.partition(": ")
    if field.split(".")[0] in ("grid", "seeds"):
        return SubmissionError(field, message)
    return from_config_error(error)
