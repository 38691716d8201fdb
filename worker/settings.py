"""Service settings from environment variables (prefix ``ADRPO_``), each with a default that needs no server.

| variable | default | meaning |
| --- | --- | --- |
| ``ADRPO_DATA_DIR`` | ``~/.adrpo`` (``adrpo_engine.paths``) | models cache, SQLite file, broker, artifacts |
| ``ADRPO_DATABASE_URL`` | ``sqlite:///<data_dir>/adrpo.db`` | SQLAlchemy URL (``postgresql+psycopg://...``) |
| ``ADRPO_BROKER_URL`` | ``filesystem://`` (``<data_dir>/broker``) | Celery broker (``redis://host:6379/0``) |
| ``ADRPO_ARTIFACTS_DIR`` | ``<data_dir>/runs`` | one run directory per job (shared when workers are elsewhere) |
| ``ADRPO_AUTH_USER`` / ``ADRPO_AUTH_PASSWORD`` | unset (no auth) | HTTP Basic for the API and the studio |
| ``ADRPO_HEARTBEAT_INTERVAL_S`` | ``5`` | how often a worker stamps its running job |
| ``ADRPO_HEARTBEAT_TIMEOUT_S`` | ``60`` | a running job not stamped for this long is re-queued |
| ``ADRPO_REMOTE_REWARD_HOSTS`` | empty (none) | ``host:port`` list (comma-separated) that API/studio jobs may send remote rewards to |
| ``ADRPO_USER_REWARD_MODULES`` | empty (none) | modules whose ``module:function`` rewards API/studio jobs may use |
| ``ADRPO_UPLOADS_DIR`` | ``<data_dir>/uploads`` | the only root for local ``prompts.file`` / ``prompts.dataset`` of API/studio jobs |
| ``ADRPO_MODELS_DIR`` | ``<data_dir>/models`` | the only root for local model paths (``model.name_or_path``, reward models) |
| ``ADRPO_WORKER_GPUS`` | unset: ``CUDA_VISIBLE_DEVICES``, else every GPU | comma-separated GPU ids this worker owns; a job with ``resources.processes = N`` gets N of them, one process each |
| ``ADRPO_GROUP_STOP_GRACE_S`` | ``120`` | seconds a multi-process job has to stop after a cancel or a shutdown before its process group is killed |

What each setting opens to whoever can reach the API is in docs/security.md.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adrpo_engine.paths import DATA_DIR_ENV
from adrpo_engine.paths import data_dir as default_data_dir

EMBEDDED_BROKER = "filesystem://"


class Settings(BaseSettings):
    # An empty variable (ADRPO_ARTIFACTS_DIR=) means the default, not the current directory.
    model_config = SettingsConfigDict(env_prefix="ADRPO_", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Root of everything the service writes.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite file in data_dir.")
    broker_url: str = Field(default="", description="Celery broker URL; empty = the embedded filesystem broker.")
    artifacts_dir: Path = Field(default_factory=lambda data: data["data_dir"] / "runs", description="Run directories.")
    auth_user: str | None = Field(default=None, description="HTTP Basic user for the API and the studio.")
    auth_password: str | None = Field(default=None, description="HTTP Basic password.")
    heartbeat_interval_s: float = Field(default=5.0, gt=0, description="Seconds between a worker's heartbeats.")
    heartbeat_timeout_s: float = Field(default=60.0, gt=0, description="Seconds without heartbeat before re-queueing.")
    broker_poll_s: float = Field(default=0.2, gt=0, description="Polling period of the embedded broker.")
    remote_reward_hosts: str = Field(
        default="", description="Comma-separated host:port that submitted jobs may use as remote rewards; empty = none."
    )

    @property
    def remote_reward_allowlist(self) -> frozenset[str]:
        return frozenset(item.strip().lower() for item in self.remote_reward_hosts.split(",") if item.strip())

    user_reward_modules: str = Field(
        default="",
        description="Comma-separated modules (and their submodules) whose functions API/studio jobs may name "
        "as rewards ('module:function'); empty = none.",
    )
    uploads_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "uploads", description="Root of local prompt files/datasets."
    )
    models_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "models", description="Root of local model paths."
    )
    worker_gpus: str = Field(
        default="",
        description="Comma-separated GPU ids this worker owns (multi-process jobs); empty = CUDA_VISIBLE_DEVICES/all.",
    )
    group_stop_grace_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a multi-process job may take to stop before its process group is killed.",
    )

    def owned_gpus(self) -> list[str]:
        """The GPU ids this worker may give a job: ADRPO_WORKER_GPUS, else CUDA_VISIBLE_DEVICES, else all."""
        import os

        listed = self.worker_gpus or os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if listed.strip():
            return [item.strip() for item in listed.split(",") if item.strip()]
        import torch

        return [str(index) for index in range(torch.cuda.device_count())]

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'adrpo.db'}"
        if not self.broker_url:
            self.broker_url = EMBEDDED_BROKER
        self.artifacts_dir = self.artifacts_dir.expanduser().resolve()
        self.uploads_dir = self.uploads_dir.expanduser().resolve()
        self.models_dir = self.models_dir.expanduser().resolve()
        self.auth_user, self.auth_password = self.auth_user or None, self.auth_password or None
        if (self.auth_user is None) != (self.auth_password is None):
            present, missing = (
                ("ADRPO_AUTH_USER", "ADRPO_AUTH_PASSWORD")
                if self.auth_user
                else ("ADRPO_AUTH_PASSWORD", "ADRPO_AUTH_USER")
            )
            # Half a configuration must not silently mean "no auth".
            raise ValueError(f"{present} is set but {missing} is not: set both to turn auth on, or neither")
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must be larger than heartbeat_interval_s")
        return self

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem:")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_user and self.auth_password)

    @property
    def reward_module_allowlist(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.user_reward_modules.split(",") if part.strip())

    def run_dir(self, job_id: str) -> Path:
        return self.artifacts_dir / job_id

    def environment(self) -> dict[str, str]:
        """These settings as ADRPO_* variables, for a worker subprocess that must see the same store."""
        env = {
            DATA_DIR_ENV: str(self.data_dir),
            "ADRPO_DATABASE_URL": self.database_url,
            "ADRPO_BROKER_URL": self.broker_url,
            "ADRPO_ARTIFACTS_DIR": str(self.artifacts_dir),
            "ADRPO_HEARTBEAT_INTERVAL_S": str(self.heartbeat_interval_s),
            "ADRPO_HEARTBEAT_TIMEOUT_S": str(self.heartbeat_timeout_s),
            "ADRPO_BROKER_POLL_S": str(self.broker_poll_s),
            "ADRPO_USER_REWARD_MODULES": self.user_reward_modules,
            "ADRPO_UPLOADS_DIR": str(self.uploads_dir),
            "ADRPO_MODELS_DIR": str(self.models_dir),
            "ADRPO_WORKER_GPUS": self.worker_gpus,
            "ADRPO_GROUP_STOP_GRACE_S": str(self.group_stop_grace_s),
        }
        if self.auth_user and self.auth_password:
            env["ADRPO_AUTH_USER"] = self.auth_user
            env["ADRPO_AUTH_PASSWORD"] = self.auth_password
        return env
