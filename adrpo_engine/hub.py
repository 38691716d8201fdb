"""Hub ids before anything loads them: is the model in the local Hugging Face cache, and does the hub
know it? transformers and diffusers answer an id they cannot resolve only after their retries (minutes
on a machine whose network drops packets) and with a multi-line message; this module answers in one
request with a short timeout, so a submission naming a missing id is refused at once and a job on a
machine without the hub fails in seconds with one readable line."""

from __future__ import annotations

import enum
import os
from pathlib import Path

from .config import ConfigError
from .kinds import BUILTIN_PREFIX

PROBE_TIMEOUT_S = 5.0
# A folder a loader can start from: a transformers model, a diffusers pipeline, a PEFT adapter.
ENTRY_FILES = ("config.json", "model_index.json", "adapter_config.json")


class HubAnswer(enum.Enum):
    CACHED = "in the local cache"
    EXISTS = "on the hub"
    MISSING = "not on the hub"
    OFFLINE = "hub disabled (HF_HUB_OFFLINE)"
    UNREACHABLE = "hub unreachable"


def is_hub_id(name_or_path: str) -> bool:
    """Neither a built-in model nor a local folder (absolute, relative or home-relative)."""
    if name_or_path.startswith(BUILTIN_PREFIX) or name_or_path.startswith(("/", ".", "~")):
        return False
    return not Path(name_or_path).exists()


def is_cached(repo_id: str, revision: str | None = None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for filename in ENTRY_FILES:
        try:
            found = try_to_load_from_cache(repo_id, filename, revision=revision)
        except ValueError:  # not a valid repo id at all
            return False
        if isinstance(found, str):
            return True
    return False


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode()) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def probe(repo_id: str, revision: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> HubAnswer:
    """Where ``repo_id`` can come from, asking the hub at most once."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if is_cached(repo_id, revision):
        return HubAnswer.CACHED
    if hub_offline():
        return HubAnswer.OFFLINE
    try:
        # HF_ENDPOINT read now, not at import: a mirror configured for this process is the one asked.
        HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None).model_info(repo_id, revision=revision, timeout=timeout_s)
    except GatedRepoError:
        return HubAnswer.EXISTS  # it exists; the token decides at download time
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError):
        return HubAnswer.MISSING
    except Exception:  # noqa: BLE001 (connection refused, DNS, time-outs, proxies: all mean "cannot ask")
        return HubAnswer.UNREACHABLE
    return HubAnswer.EXISTS


def missing_message(repo_id: str, revision: str | None) -> str:
    at = f" at revision {revision!r}" if revision else ""
    return f"{repo_id!r}{at} does not exist on the Hugging Face hub (or is private); check the id"


def require_loadable(repo_id: str, revision: str | None = None, field: str = "model.name_or_path") -> None:
    """Before loading a hub id: a ConfigError in one line when it cannot be loaded from here."""
    answer = probe(repo_id, revision)
    if answer is HubAnswer.MISSING:
        raise ConfigError(f"{field}: {missing_message(repo_id, revision)}")
    if answer in (HubAnswer.OFFLINE, HubAnswer.UNREACHABLE):
        raise ConfigError(
            f"{field}: {repo_id!r} is not in the local Hugging Face cache and the hub cannot be reached "
            f"({answer.value}); download it where the hub is reachable (`hf download {repo_id}`) or give a "
            "local folder"
        )


def first_line(error: BaseException) -> str:
    """A loader's exception in one line (transformers' end with advice about a stack trace not shown)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
