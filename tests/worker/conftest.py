"""Fixtures for the job service: a store in a temporary data directory that shares the built-in models cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.settings import Settings


@pytest.fixture(scope="session")
def models_cache() -> Path:
    """The built-in digits models, built once for the whole test session (tests/conftest.py's data dir)."""
    from adrpo_engine.models.digits_pretrain import load_digits_models
    from adrpo_engine.paths import builtin_models_dir

    load_digits_models()
    return builtin_models_dir()


def service_data_dir(root: Path, models_cache: Path) -> Path:
    """A fresh data directory whose models/ points at the shared cache (no 30 s rebuild per test)."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "models").exists():
        os.symlink(models_cache, data / "models")
    return data


@pytest.fixture
def settings(tmp_path: Path, models_cache: Path) -> Settings:
    return Settings(data_dir=service_data_dir(tmp_path, models_cache), heartbeat_interval_s=0.2,
                    heartbeat_timeout_s=1.0, database_url="", broker_url="")


@pytest.fixture
def service(settings: Settings):
    from worker.service import JobService

    svc = JobService(settings)
    yield svc
    svc.close()


@pytest.fixture
def worker_context(settings: Settings):
    from worker.db import Store
    from worker.tasks import WorkerContext

    ctx = WorkerContext(settings=settings, store=Store(settings.database_url))
    yield ctx
    ctx.store.engine.dispose()


def tiny_digits(**overrides):
    """digits-even overrides for a run of a second or two."""
    values = {"steps": 6, "checkpoint_every": 2, "sample_every": 3, "group_size": 8, "prompts_per_step": 2,
              "flow.sample_steps": 4}
    values.update(overrides)
    return values
