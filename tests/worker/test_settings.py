"""Settings: one ADRPO_ prefix, defaults that need no server, and migrations that apply twice."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from worker.db import Store, upgrade
from worker.settings import Settings


def test_defaults_live_in_the_data_directory(tmp_path, monkeypatch):
    for name in ("ADRPO_DATABASE_URL", "ADRPO_BROKER_URL", "ADRPO_ARTIFACTS_DIR", "ADRPO_AUTH_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADRPO_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.data_dir == tmp_path.resolve()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'adrpo.db'}"
    assert settings.broker_url == "filesystem://" and settings.embedded_broker
    assert settings.artifacts_dir == tmp_path.resolve() / "runs"
    assert settings.run_dir("abc") == tmp_path.resolve() / "runs" / "abc"
    assert not settings.auth_enabled


def test_environment_overrides_and_round_trips_to_a_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("ADRPO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ADRPO_DATABASE_URL", "postgresql+psycopg://u@db/adrpo")
    monkeypatch.setenv("ADRPO_BROKER_URL", "redis://cache:6379/3")
    monkeypatch.setenv("ADRPO_AUTH_USER", "ada")
    monkeypatch.setenv("ADRPO_AUTH_PASSWORD", "pw")
    monkeypatch.setenv("ADRPO_HEARTBEAT_TIMEOUT_S", "30")
    settings = Settings()
    assert settings.database_url.startswith("postgresql") and not settings.embedded_broker
    assert settings.auth_enabled and settings.heartbeat_timeout_s == 30
    for key, value in settings.environment().items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings


def test_a_heartbeat_timeout_shorter_than_the_interval_is_refused(tmp_path):
    with pytest.raises(ValueError, match="heartbeat_timeout_s"):
        Settings(data_dir=tmp_path, heartbeat_interval_s=10, heartbeat_timeout_s=5)


def test_migrations_create_the_tables_and_are_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    upgrade(url)
    tables = set(inspect(Store(url).engine).get_table_names())
    assert {"jobs", "metrics", "checkpoints", "samples", "comparisons", "alembic_version"} <= tables
