"""A job's adapter on the Hugging Face Hub: the same folder as the adapter zip (adapter files, model card
README.md, config.yaml, sample grid), uploaded with huggingface_hub. The token comes from the
environment (HF_TOKEN) or huggingface_hub's own login, and is never printed or stored by us."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .service import JobService
from .validation import HUB_ID


class PushError(ValueError):
    """A push that cannot happen, in one line naming what to change."""


@contextmanager
def push_folder(service: JobService, job_id: str, step: int | None = None) -> Iterator[Path]:
    """The folder that would be uploaded: the job's adapter zip unpacked (built and verified as for the
    download), in a temporary directory that is gone after the ``with`` block."""
    archive = service.adapter_zip(job_id, step)
    with tempfile.TemporaryDirectory(prefix="adrpo-push-") as folder:
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(folder)
        yield Path(folder)


def check_repo_id(repo_id: str) -> None:
    if not HUB_ID.fullmatch(repo_id) or "/" not in repo_id or ".." in repo_id:
        raise PushError(f"--repo: {repo_id!r} is not a hub repository id like 'user/name'")


def push_to_hub(service: JobService, job_id: str, repo_id: str, step: int | None = None, private: bool = False) -> str:
    """Create (or reuse) the model repository and upload the adapter folder; returns the commit's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    job = service.get_job(job_id)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)  # read now: a mirror set for this process
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
            raise PushError(f"push: the hub refused the upload to {repo_id!r}: {first}") from None
        except OSError as error:  # connection refused, DNS, time-outs
            raise PushError(f"push: cannot reach the hub ({type(error).__name__}: {error})") from None
    return str(getattr(commit, "commit_url", commit))
