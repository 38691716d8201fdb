"""Issue 9 item 6 on PostgreSQL: a NUL in a job id was a 500 (psycopg refuses NUL in a string literal)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from worker.settings import Settings

from .conftest import service_data_dir
from .test_scale_out import database_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.services


def test_ids_with_nul_are_404_on_postgresql(tmp_path, models_cache, database_url):  # noqa: F811
    from app.server import create_app

    settings = Settings(data_dir=service_data_dir(tmp_path, models_cache), database_url=database_url, broker_url="")
    with TestClient(create_app(settings, studio=False)) as client:
        for path in ("/api/jobs/a%00b", "/api/jobs/a%00b/metrics", "/api/comparisons/a%00b", "/api/jobs/a%00b/cancel"):
            call = client.post if path.endswith("cancel") else client.get
            response = call(path)
            assert response.status_code == 404, (path, response.text)
