"""A job's adapter on the Hugging Face Hub: the same folder as the adapter zip (adapter files, model card
README.md, config.yaml, sample grid), uploaded with huggingface_hub. The CLI's token comes from the
environment (HF_TOKEN) or huggingface_hub's own login; the studio passes the token its user typed (the
server's own is never used for a push from the page). No token is printed, logged or stored by us."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .validation import HUB_ID


class AdapterSource(Protocol):
    """What a push reads from the job service (worker.service.JobService, or the studio's view of it)."""

    def get_job(self, job_id: str) -> Any: ...

    def adapter_zip(self, job_id: str, step: int | None = None) -> Path: ...


class PushError(ValueError):
    """A push that cannot happen, in one line naming what to change."""


@contextmanager
def push_folder(service: AdapterSource, job_id: str, step: int | None = None) -> Iterator[Path]:
    """The folder that would be uploaded: the job's adapter zip unpacked (built and verified as for the
    download), in a temporary directory that is gone after the ``with`` block."""
    archive = service.adapter_zip(job_id, step)
    with tempfile.TemporaryDirectory(prefix="adrpo-push-") as folder:
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(folder)
        yield Path(folder)


def check_repo_id(repo_id: str, field: str = "--repo") -> None:
    if not HUB_ID.fullmatch(repo_id) or "/" not in repo_id or ".." in repo_id:
        raise PushError(f"{field}: {repo_id!r} is not a hub repository id like 'user/name'")


def push_to_hub(
    service: AdapterSource,
    job_id: str,
    repo_id: str,
    step: int | None = None,
    private: bool = False,
    token: str | None = None,
) -> str:
    """Create (or reuse) the model repository and upload the adapter folder; returns the commit's URL.
    ``token``: the caller's own; None means huggingface_hub's usual lookup (HF_TOKEN, its login)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    job = service.get_job(job_id)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)  # endpoint read now: a mirror
    with push_folder(service, job_id, step) as folder:
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                commit_message=f"ADRPO adapter: job {job.name} ({job.id})",
            )
        except HfHubHTTPError as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise PushError(_without(token, f"push: the hub refused the upload to {repo_id!r}: {first}")) from None
        except OSError as error:  # connection refused, DNS, time-outs
            raise PushError(_without(token, f"push: cannot reach the hub ({type(error).__name__}: {error})")) from None
    return str(getattr(commit, "commit_url", commit))


def _without(token: str | None, message: str) -> str:
    # A message goes to a page or a terminal: never with the token in it, whatever the library echoed.
    return message.replace(token, "***") if token else message
