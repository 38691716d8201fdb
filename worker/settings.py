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
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adrpo_engine.paths import DATA_DIR_ENV, data_dir as default_data_dir

EMBEDDED_BROKER = "filesystem://"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADRPO_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="Root of everything the service writes.")
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite file in data_dir.")
    broker_url: str = Field("", description="Celery broker URL; empty = the embedded filesystem broker.")
    artifacts_dir: Path | None = Field(None, description="Run directories; None = data_dir/runs.")
    auth_user: str | None = Field(None, description="HTTP Basic user for the API and the studio.")
    auth_password: str | None = Field(None, description="HTTP Basic password.")
    heartbeat_interval_s: float = Field(5.0, gt=0, description="Seconds between a worker's heartbeats.")
    heartbeat_timeout_s: float = Field(60.0, gt=0, description="Seconds without heartbeat before re-queueing.")
    broker_poll_s: float = Field(0.2, gt=0, description="Polling period of the embedded broker.")
    remote_reward_hosts: str = Field(
        "", description="Comma-separated host:port that submitted jobs may use as remote rewards; empty = none."
    )

    @property
    def remote_reward_allowlist(self) -> frozenset[str]:
        return frozenset(item.strip().lower() for item in self.remote_reward_hosts.split(",") if item.strip())

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'adrpo.db'}"
        if not self.broker_url:
            self.broker_url = EMBEDDED_BROKER
        self.artifacts_dir = Path(self.artifacts_dir or self.data_dir / "runs").expanduser().resolve()
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
        }
        if self.auth_enabled:
            env["ADRPO_AUTH_USER"] = self.auth_user
            env["ADRPO_AUTH_PASSWORD"] = self.auth_password
        return env
