"""What a job submitted over the API or the studio may reach on the worker: the trust boundary.

The CLI (``adrpo train``) runs the user's own config on the user's own machine and may import any module
and read any path. A job that arrives through the service comes from whoever can reach the web process, so:

- a user reward ``module:function`` is imported only from modules the operator listed in
  ``ADRPO_USER_REWARD_MODULES`` (empty by default: none);
- a local path is accepted only under a configured root: prompt files and datasets under
  ``ADRPO_UPLOADS_DIR``, models (``model.name_or_path`` and reward models) under ``ADRPO_MODELS_DIR``;
  the store, the broker folder and the run directories are never a source, whatever the roots;
- refusals name the field and the setting, never the file's contents, and read the same whether the
  path exists or not (the decision is made on the resolved path's place, not on the file).

The same check runs at submission (``JobService.submit``) and again on the worker before a job starts, so
rows stored before a policy change, or by another writer, cannot get past it. docs/security.md has the
threat model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrpo_engine.config import JobConfig

from .inputs import SubmissionError, looks_like_path
from .settings import Settings

REWARD_ALLOWLIST_ENV = "ADRPO_USER_REWARD_MODULES"
UPLOADS_ENV = "ADRPO_UPLOADS_DIR"
MODELS_ENV = "ADRPO_MODELS_DIR"
# Reward options that name a model or a file (a row's `model` is checked as well; aesthetic's `clip`/`head`,
# pickscore's `processor`, hpsv2's `checkpoint`, and any future
# `*_path`/`*_dir`/`*_file`): the same root as the job's model.
_PATH_OPTION_SUFFIXES = ("_path", "_dir", "_file", "_model")
_PATH_OPTIONS = {"model", "path", "model_name_or_path", "checkpoint", "clip", "head", "processor"}


@dataclass(frozen=True)
class Policy:
    reward_modules: tuple[str, ...]
    uploads_dir: Path
    models_dir: Path
    never: tuple[Path, ...]  # store, broker and run directories: not a source under any root

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        never = [settings.artifacts_dir, settings.broker_dir]
        if settings.database_url.startswith("sqlite:///"):
            never.append(Path(settings.database_url.removeprefix("sqlite:///")))
        return cls(
            settings.reward_module_allowlist,
            settings.uploads_dir,
            settings.models_dir,
            tuple(_real(path) for path in never),
        )

    def allows_module(self, module: str) -> bool:
        return any(module == allowed or module.startswith(allowed + ".") for allowed in self.reward_modules)


def check_policy(job: JobConfig, policy: Policy) -> None:
    """Raise SubmissionError for anything in ``job`` outside what the operator opened to the service."""
    from adrpo_engine.rewards import available_rewards
    from adrpo_engine.rewards.remote import is_remote

    registered = {reward.name for reward in available_rewards()}
    # eval-only rewards run on the worker too: the same rules as the training rewards
    for section, specs in (("rewards", job.rewards), ("eval.rewards", job.eval.rewards)):
        for index, spec in enumerate(specs):
            if is_remote(spec.name):
                continue  # remote hosts: validation.check_remote_reward_host, for both sections
            if spec.name not in registered and ":" in spec.name:
                _check_reward_module(f"{section}.{index}.name", spec.name, policy)
            if spec.model is not None:  # a reward model's hub id, built-in name or local path
                _check_model_reference(f"{section}.{index}.model", spec.model, policy)
            for key, value in spec.options.items():
                if _is_path_option(key) and isinstance(value, str):
                    _check_model_reference(f"{section}.{index}.options.{key}", value, policy)
    _check_model_reference("model.name_or_path", job.model.name_or_path, policy)
    for field, value in (("prompts.file", job.prompts.file), ("prompts.dataset", job.prompts.dataset)):
        if value and not value.startswith("builtin:") and (looks_like_path(value) or field == "prompts.file"):
            _check_under(field, value, policy.uploads_dir, UPLOADS_ENV, policy)
    if job.resources.accelerate_config:  # a file the worker hands to `accelerate launch`
        _check_under(ACCELERATE_CONFIG, job.resources.accelerate_config, policy.uploads_dir, UPLOADS_ENV, policy)
    # Inline rows name clip files in audio.column (an audio job's uploads): the same root as prompt files.
    column = job.audio.column
    for index, row in enumerate(job.prompts.rows):
        value, field = row.get(column), f"prompts.rows.{index}.{column}"
        if isinstance(value, dict):
            value, field = value.get("path"), f"{field}.path"
        if isinstance(value, str):
            _check_under(field, value, policy.uploads_dir, UPLOADS_ENV, policy)


ACCELERATE_CONFIG = "resources.accelerate_config"


def check_files_opened_by_validation(data: Any, grid: Any, policy: Policy | None) -> None:
    """The one path the job schema opens while it validates (``resources.accelerate_config``, read as YAML), in a
    raw config or a sweep grid: under the uploads root before validation runs, so neither its messages nor its
    reads reach files outside the roots."""
    if policy is None:
        return
    resources = data.get("resources") if isinstance(data, dict) else None
    values = [resources.get("accelerate_config")] if isinstance(resources, dict) else []
    if isinstance(grid, dict) and isinstance(grid.get(ACCELERATE_CONFIG), list):
        values += grid[ACCELERATE_CONFIG]
    for value in values:
        if isinstance(value, str):
            _check_under(ACCELERATE_CONFIG, value, policy.uploads_dir, UPLOADS_ENV, policy)


def _check_reward_module(field: str, name: str, policy: Policy) -> None:
    module = name.partition(":")[0]
    if policy.allows_module(module):
        return
    allowed = ", ".join(policy.reward_modules) if policy.reward_modules else "empty, so none"
    raise SubmissionError(
        field,
        f"user reward module {module!r} is not allowed for jobs submitted over the API or the studio: the operator "
        f"lists the allowed modules in {REWARD_ALLOWLIST_ENV} (now {allowed}); use a registered reward "
        "(`adrpo rewards`), or run it with `adrpo train` on your own machine",
    )


def _check_model_reference(field: str, value: str, policy: Policy) -> None:
    if value.startswith("builtin:") or not looks_like_path(value):
        return  # a built-in name or a hub id (its syntax is validation.py's job)
    _check_under(field, value, policy.models_dir, MODELS_ENV, policy)


def _check_under(field: str, value: str, root: Path, env: str, policy: Policy) -> None:
    """``value`` must resolve (symlinks followed) inside ``root`` and outside the service's own files.
    One message for every refusal, so the answer says nothing about what exists outside the root."""
    refusal = SubmissionError(
        field, f"local paths of jobs submitted over the API or the studio must lie under {root} ({env})"
    )
    if not value.startswith("/") or "\x00" in value:
        raise refusal
    resolved = _real(Path(value))
    if not resolved.is_relative_to(_real(root)):
        raise refusal
    if any(resolved == blocked or resolved.is_relative_to(blocked) for blocked in policy.never):
        raise refusal


def _is_path_option(key: Any) -> bool:
    return isinstance(key, str) and (key in _PATH_OPTIONS or key.endswith(_PATH_OPTION_SUFFIXES))


def _real(path: Path) -> Path:
    # realpath, not Path.resolve(strict=True): it never raises, so a missing file is judged by its place.
    return Path(os.path.realpath(path))
