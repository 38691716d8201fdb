"""Sweeps and evals through the REST API (TestClient, real SQLite store, embedded broker; task bodies in-process)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from adrpo_engine import metrics as M
from tests.worker.conftest import models_cache, service_data_dir, tiny_digits  # noqa: F401 (fixture)
from worker.evals import run_eval
from worker.settings import Settings
from worker.tasks import WorkerContext, train_job


@pytest.fixture
def client(tmp_path, models_cache):
    from app.server import create_app

    settings = Settings(data_dir=service_data_dir(tmp_path, models_cache), database_url="", broker_url="")
    app = create_app(settings, studio=False)
    with TestClient(app) as test_client:
        test_client.service = app.state.service
        test_client.context = WorkerContext(settings=settings, store=app.state.service.store)
        yield test_client


def queued_files(client) -> int:
    return sum(1 for path in (client.service.settings.broker_dir / "queue").glob("*") if path.is_file())


BODY = {"preset": "digits-even",
        "overrides": tiny_digits(steps=2, checkpoint_every=2, **{"eval.samples_per_prompt": 4}),
        "grid": {"algorithm": ["adrpo", "fixed"]}, "seeds": [0, 1]}


def test_post_and_get_a_sweep_then_cancel_it(client):
    created = client.post("/api/sweeps", json=BODY)
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert len(sweep["jobs"]) == 4 and sweep["status"] == "queued" and queued_files(client) == 4
    assert {j["method"] for j in sweep["jobs"]} == {"adrpo", "fixed"}
    first = sweep["jobs"][0]["job_id"]
    assert client.get(f"/api/jobs/{first}").json()["status"] == "queued"  # an ordinary job
    assert train_job(client.context, first) == "succeeded"
    shown = client.get(f"/api/sweeps/{sweep['id']}").json()
    assert shown["progress"]["succeeded"] == 1 and shown["status"] == "running"
    assert [s["id"] for s in client.get("/api/sweeps").json()] == [sweep["id"]]
    cancelled = client.post(f"/api/sweeps/{sweep['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert sorted(j["status"] for j in cancelled["jobs"]) == ["cancelled", "cancelled", "cancelled", "succeeded"]
    assert client.get("/api/sweeps/nope").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({**BODY, "grid": {"beta0": [0.1, -5]}}, "grid"),
    ({**BODY, "grid": {"bogus": [1]}}, "grid"),
    ({**BODY, "seeds": "0"}, "seeds"),
    ({**BODY, "extra": 1}, "extra"),
    ({k: v for k, v in BODY.items() if k != "grid"}, "grid"),
    ({**BODY, "preset": "nope"}, "preset"),
    ({**BODY, "name": "../x"}, "name"),
    ([1, 2], "body"),
])
def test_bad_sweeps_are_422_and_create_nothing(client, body, field):
    answer = client.post("/api/sweeps", json=body)
    assert answer.status_code == 422 and answer.json()["detail"].startswith(f"{field}"), answer.text
    assert client.get("/api/jobs").json() == [] and client.get("/api/sweeps").json() == [] and queued_files(client) == 0


def test_evals_of_a_job_through_the_api(client):
    job = client.post("/api/jobs", json={"preset": "digits-even", "overrides": tiny_digits(
        **{"eval.samples_per_prompt": 4})}).json()
    assert client.post(f"/api/jobs/{job['id']}/evals", json={"steps": [2]}).status_code == 422  # no checkpoint yet
    train_job(client.context, job["id"])
    before = queued_files(client)
    answer = client.post(f"/api/jobs/{job['id']}/evals", json={"steps": [6], "reference": True})
    assert answer.status_code == 202, answer.text
    assert [(e["step"], e["status"]) for e in answer.json()] == [(0, "queued"), (6, "queued")]
    assert queued_files(client) == before + 2
    for view in answer.json():
        run_eval(client.context.store, client.context.settings.run_dir, view["id"])
    listed = client.get(f"/api/jobs/{job['id']}/evals").json()
    assert [e["status"] for e in listed] == ["succeeded", "succeeded"]
    assert listed[1]["counts"][M.REWARD_MEAN] == 4 and listed[1]["metrics"][M.W2] > 0
    bad = client.post(f"/api/jobs/{job['id']}/evals", json={"steps": [5]})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("steps:")
    assert client.post("/api/jobs/nope/evals", json={}).status_code == 404
