"""The REST API through FastAPI's TestClient on a real SQLite store and the embedded broker (no worker:
training itself is exercised in tests/worker and tests/app/test_serve.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.worker.conftest import models_cache, service_data_dir, tiny_digits  # noqa: F401 (fixture)
from tests.worker.malformed import MALFORMED
from worker.models import Job
from worker.settings import Settings
from worker.tasks import WorkerContext, train_job


@pytest.fixture
def api_settings(tmp_path, models_cache):
    return Settings(data_dir=service_data_dir(tmp_path, models_cache), database_url="", broker_url="")


@pytest.fixture
def client(api_settings):
    from app.server import create_app

    app = create_app(api_settings)
    with TestClient(app) as test_client:
        test_client.service = app.state.service
        yield test_client


@pytest.fixture(scope="module")
def refusing_client(tmp_path_factory, models_cache):
    """One app for all malformed submissions: each must leave the store and the queue empty."""
    from app.server import create_app

    settings = Settings(
        data_dir=service_data_dir(tmp_path_factory.mktemp("refusals"), models_cache), database_url="", broker_url=""
    )
    app = create_app(settings, studio=False)
    with TestClient(app) as test_client:
        test_client.service = app.state.service
        test_client.settings = settings
        yield test_client


def job_count(service) -> int:
    with service.store.session() as session:
        return session.scalar(select(func.count()).select_from(Job))


def queued_messages(settings: Settings) -> int:
    return sum(1 for path in (settings.broker_dir / "queue").glob("*") if path.is_file())


def test_health_presets_and_openapi(client):
    assert client.get("/api/health").json()["status"] == "ok"
    names = [p["name"] for p in client.get("/api/presets").json()]
    assert "digits-even" in names
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/jobs",
        "/api/jobs/{job_id}/metrics",
        "/api/jobs/{job_id}/adapter.zip",
        "/api/jobs/{job_id}/comparisons",
        "/api/comparisons/{comparison_id}",
        "/api/health",
    ):
        assert path in paths
    assert client.get("/").status_code == 200  # the studio is mounted at /


def test_submit_a_preset_and_a_full_config(client, api_settings):
    created = client.post("/api/jobs", json={"preset": "digits-even", "overrides": tiny_digits()})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued" and job["preset"] == "digits-even" and job["total_steps"] == 6
    full = client.post("/api/jobs", json=job["config"])
    assert full.status_code == 201 and full.json()["config"] == job["config"]
    wrapped = client.post("/api/jobs", json={"config": job["config"], "overrides": {"steps": 3}})
    assert wrapped.status_code == 201 and wrapped.json()["total_steps"] == 3
    assert [j["id"] for j in client.get("/api/jobs").json()] == [wrapped.json()["id"], full.json()["id"], job["id"]]
    assert queued_messages(api_settings) == 3


@pytest.mark.parametrize(("case", "body", "field"), MALFORMED, ids=[case for case, _, _ in MALFORMED])
def test_a_malformed_submission_is_refused_naming_the_field_and_stores_nothing(refusing_client, case, body, field):
    client = refusing_client
    response = client.post("/api/jobs", json=body)
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.startswith(field), (case, detail)
    assert "\n" not in detail
    assert job_count(client.service) == 0
    assert queued_messages(client.settings) == 0


def test_job_reads_and_controls(client, api_settings):
    job = client.post("/api/jobs", json={"preset": "digits-even", "overrides": tiny_digits()}).json()
    context = WorkerContext(settings=api_settings, store=client.service.store)
    assert train_job(context, job["id"]) == "succeeded"

    got = client.get(f"/api/jobs/{job['id']}").json()
    assert got["status"] == "succeeded" and got["current_step"] == 6
    metrics = client.get(f"/api/jobs/{job['id']}/metrics", params={"since": 4}).json()
    assert [step for step, _ in metrics["reward/mean"]] == [5, 6]
    samples = client.get(f"/api/jobs/{job['id']}/samples", params={"since": 0}).json()
    assert {s["step"] for s in samples} == {3, 6}
    checkpoints = client.get(f"/api/jobs/{job['id']}/checkpoints").json()
    assert [c["step"] for c in checkpoints] == [2, 4, 6]
    archive = client.get(f"/api/jobs/{job['id']}/adapter.zip", params={"step": 4})
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    assert archive.content[:2] == b"PK"
    assert client.get(f"/api/jobs/{job['id']}/adapter.zip", params={"step": 5}).status_code == 404
    assert "checkpoint step 6" in client.get(f"/api/jobs/{job['id']}/log").text

    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    assert client.post(f"/api/jobs/{job['id']}/resume").json()["detail"].startswith("status")
    clone = client.post(f"/api/jobs/{job['id']}/clone", json={"overrides": {"beta0": 0.3}})
    assert clone.status_code == 201 and clone.json()["config"]["beta0"] == 0.3
    bad_clone = client.post(f"/api/jobs/{job['id']}/clone", json={"overrides": {"beta0": -1}})
    assert bad_clone.status_code == 422 and bad_clone.json()["detail"].startswith("beta0")
    assert client.post(f"/api/jobs/{clone.json()['id']}/cancel").json()["status"] == "cancelled"

    comparison = client.post(f"/api/jobs/{job['id']}/comparisons", json={"prompt": "any digit", "seed": 1})
    assert comparison.status_code == 202 and comparison.json()["status"] == "queued"
    assert client.get(f"/api/comparisons/{comparison.json()['id']}").json()["step"] is None
    assert [c["id"] for c in client.get(f"/api/jobs/{job['id']}/comparisons").json()] == [comparison.json()["id"]]
    assert (
        client.post(f"/api/jobs/{job['id']}/comparisons", json={"prompt": "any digit", "seed": 1, "num_samples": 99})
        .json()["detail"]
        .startswith("num_samples")
    )
    assert client.post(f"/api/jobs/{job['id']}/comparisons", json={"seed": 1}).json()["detail"].startswith("prompt")


def test_unknown_ids_are_404_with_a_message(client):
    for path in (
        "/api/jobs/nope",
        "/api/jobs/nope/metrics",
        "/api/jobs/nope/samples",
        "/api/jobs/nope/checkpoints",
        "/api/jobs/nope/adapter.zip",
        "/api/jobs/nope/log",
        "/api/comparisons/nope",
    ):
        response = client.get(path)
        assert response.status_code == 404 and "nope" in response.json()["detail"], path
    assert client.get("/api/jobs/x/metrics", params={"since": "soon"}).json()["detail"].startswith("since")


def test_basic_auth_guards_the_api_when_configured(tmp_path, models_cache):
    from app.server import create_app

    settings = Settings(
        data_dir=service_data_dir(tmp_path, models_cache),
        database_url="",
        broker_url="",
        auth_user="ada",
        auth_password="s3cret",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health").status_code == 401
        assert client.get("/api/health", auth=("ada", "wrong")).status_code == 401
        assert client.get("/api/health", auth=("ada", "s3cret")).status_code == 200


def test_a_broker_that_is_down_is_a_503_and_stores_nothing(tmp_path, models_cache):
    from app.server import create_app

    settings = Settings(
        data_dir=service_data_dir(tmp_path, models_cache), database_url="", broker_url="redis://127.0.0.1:1/0"
    )  # nothing listens on port 1
    app = create_app(settings, studio=False)
    app.state.service.celery.conf.broker_connection_max_retries = 0
    app.state.service.celery.conf.broker_transport_options = {"max_retries": 0}
    with TestClient(app) as client:
        response = client.post("/api/jobs", json={"preset": "digits-even", "overrides": tiny_digits()})
        assert response.status_code == 503 and response.json()["detail"].startswith("broker")
        assert client.get("/api/jobs").json() == []  # the row and its message are one unit
