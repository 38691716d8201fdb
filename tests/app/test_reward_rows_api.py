"""Reward rows through the REST API: refusals naming the row (wrong kind, wrong architecture, options,
weights) and the reward dry run on a worker (the task run in-process, as test_api runs training)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.worker.conftest import models_cache, service_data_dir  # noqa: F401, F811 (fixture)
from worker.settings import Settings
from worker.tasks import WorkerContext, reward_dry_run

TINY_LM = {
    "name": "two-rewards",
    "kind": "llm",
    "model": {"name_or_path": "builtin:tiny-lm"},
    "prompts": {"dataset": "builtin:tiny-lm-task"},
    "llm": {"max_new_tokens": 16},
    "steps": 2,
    "group_size": 2,
    "prompts_per_step": 1,
    "rewards": [
        {"name": "builtin:tiny-lm-task"},
        {"name": "reward_model", "model": "builtin:tiny-lm-rm", "weight": 0.5},
    ],
}


@pytest.fixture(scope="module")
def client(tmp_path_factory, models_cache):
    from app.server import create_app

    root = tmp_path_factory.mktemp("rows")
    # local reward models of submitted jobs must lie under models_dir (worker/policy.py): a root of its own
    settings = Settings(
        data_dir=service_data_dir(root, models_cache), models_dir=root / "models-root", database_url="", broker_url=""
    )
    app = create_app(settings, studio=False)
    with TestClient(app) as test_client:
        test_client.settings = settings
        test_client.service = app.state.service
        yield test_client


def with_rewards(*rows, **changes):
    return {**TINY_LM, **changes, "rewards": list(rows)}


def detail_of(client, body) -> str:
    response = client.post("/api/jobs", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert client.get("/api/jobs").json() == []
    return response.json()["detail"]


def test_an_image_reward_on_an_llm_job_is_refused_naming_the_row(client):
    detail = detail_of(client, with_rewards({"name": "length"}, {"name": "clip_score"}))
    assert detail.startswith("rewards.1.name: 'clip_score' scores images; this llm job needs a reward of texts"), detail


def test_a_model_of_the_wrong_architecture_is_refused_naming_the_row(client):
    root = client.settings.models_dir  # local models of submitted jobs lie under it (worker/policy.py)
    causal_lm = root / "causal-lm"
    causal_lm.mkdir(parents=True, exist_ok=True)
    (causal_lm / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    detail = detail_of(client, with_rewards({"name": "length"}, {"name": "reward_model", "model": str(causal_lm)}))
    assert detail.startswith("rewards.1.model:") and "not a sequence-classification reward model" in detail, detail

    two_labels = root / "classifier"
    two_labels.mkdir(exist_ok=True)
    (two_labels / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["BertForSequenceClassification"],
                "model_type": "bert",
                "id2label": {"0": "neg", "1": "pos"},
            }
        )
    )
    detail = detail_of(client, with_rewards({"name": "reward_model", "model": str(two_labels)}))
    assert detail.startswith("rewards.0.model:") and "2 labels" in detail, detail

    # a CLIP model where a reward model is needed (built-in: its kind is declared, nothing is built)
    detail = detail_of(client, with_rewards({"name": "length"}, {"name": "reward_model", "model": "builtin:tiny-clip"}))
    assert detail.startswith("rewards.1.model: 'builtin:tiny-clip' is a clip-family model"), detail
    # a job's base model where a reward model is needed
    detail = detail_of(client, with_rewards({"name": "reward_model", "model": "builtin:tiny-lm"}))
    assert detail.startswith("rewards.0.model: 'builtin:tiny-lm' is a base model of llm jobs"), detail


def test_options_and_weights_are_checked_by_the_rewards_schema(client):
    assert detail_of(client, with_rewards({"name": "length", "options": {"targte": 3}})).startswith(
        "rewards.0.options.targte: unknown option of 'length' (its options: target, unit)"
    )
    assert detail_of(client, with_rewards({"name": "length", "options": {"unit": "lines"}})).startswith(
        "rewards.0.options.unit:"
    )
    assert detail_of(client, with_rewards({"name": "regex_format"})).startswith("rewards.0.options.pattern:")
    assert detail_of(client, with_rewards({"name": "reward_model"})).startswith("rewards.0.model: 'reward_model' needs")
    assert detail_of(
        client, with_rewards({"name": "length", "weight": 0}, {"name": "builtin:tiny-lm-task", "weight": 0})
    ).startswith("rewards: every weight is 0")
    # the old spelling, options.model, still reads as the row's model
    accepted = client.post(
        "/api/rewards/dry-run",
        json={"config": with_rewards({"name": "reward_model", "options": {"model": "builtin:tiny-lm-rm"}})},
    )
    assert accepted.status_code == 202 and accepted.json()["status"] == "queued"


def test_the_catalog_lists_each_rewards_schema(client):
    catalog = {reward["name"]: reward for reward in client.get("/api/rewards").json()}
    assert catalog["clip_score"]["needs"] == "clip_model" and "builtin:tiny-clip" in catalog["clip_score"]["models"]
    assert catalog["reward_model"]["models"][0] == "builtin:tiny-lm-rm"
    target = next(o for o in catalog["length"]["options"] if o["name"] == "target")
    assert target["type"] == "int" and target["default"] == 50 and target["minimum"] == 1


def test_dry_run_scores_reference_samples_with_each_reward_on_a_worker(client):
    bad = client.post("/api/rewards/dry-run", json={"config": with_rewards({"name": "clip_score"})})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("rewards.0.name")
    queued = client.post("/api/rewards/dry-run", json={"config": TINY_LM, "num_samples": 3, "seed": 1})
    assert queued.status_code == 202, queued.text
    dry_run_id = queued.json()["id"]
    context = WorkerContext(settings=client.settings, store=client.service.store)
    assert reward_dry_run(context, dry_run_id) == "succeeded"

    done = client.get(f"/api/rewards/dry-runs/{dry_run_id}").json()
    assert done["status"] == "succeeded" and done["prompt"] == "list fruits:"
    labels = [row["label"] for row in done["rewards"]]
    assert labels == ["reward/builtin:tiny-lm-task", "reward/reward_model"]
    assert len(done["samples"]) == 3
    for sample in done["samples"]:
        assert set(sample["scores"]) == set(labels) and sample["text"] is not None
        # the total is the weighted sum the trainer uses: 1 x rule + 0.5 x reward model
        want = sample["scores"][labels[0]] + 0.5 * sample["scores"][labels[1]]
        assert sample["total"] == pytest.approx(want, abs=1e-5)
    assert reward_dry_run(context, dry_run_id) == "skipped"  # a redelivered message runs nothing twice
    assert client.get("/api/rewards/dry-runs/nope").status_code == 404
    too_many = client.post("/api/rewards/dry-run", json={"config": TINY_LM, "num_samples": 99})
    assert too_many.status_code == 422 and too_many.json()["detail"].startswith("num_samples:")
    assert (
        client.post("/api/rewards/dry-run", json={"config": TINY_LM, "seed": "x"}).json()["detail"].startswith("seed:")
    )


def test_dry_run_of_an_image_job_serves_its_images(client):
    body = {
        "preset": "digits-even",
        "overrides": {"rewards": [{"name": "digits:even"}, {"name": "digits:class", "options": {"k": 4}}]},
        "num_samples": 2,
    }
    queued = client.post("/api/rewards/dry-run", json=body)
    assert queued.status_code == 202, queued.text
    context = WorkerContext(settings=client.settings, store=client.service.store)
    assert reward_dry_run(context, queued.json()["id"]) == "succeeded"
    done = client.get(f"/api/rewards/dry-runs/{queued.json()['id']}").json()
    assert [row["label"] for row in done["rewards"]] == ["reward/digits:even", "reward/digits:class"]
    image = client.get(f"/api/rewards/dry-runs/{done['id']}/images/1")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get(f"/api/rewards/dry-runs/{done['id']}/images/7").status_code == 404


def test_a_dry_run_that_cannot_load_its_reward_fails_readably(client, tmp_path):
    folder = tmp_path / "rm"
    folder.mkdir()
    # config.json says it is a reward model; there are no weights: the check passes, the load fails
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["Qwen2ForSequenceClassification"], "model_type": "qwen2", "num_labels": 1})
    )
    queued = client.post(
        "/api/rewards/dry-run", json={"config": with_rewards({"name": "reward_model", "model": str(folder)})}
    )
    # held to the models root like any model of a submitted job
    assert queued.status_code == 422 and queued.json()["detail"].startswith("rewards.0.model:")
    inside = client.settings.models_dir / "rm"
    inside.mkdir(parents=True, exist_ok=True)
    (inside / "config.json").write_text((folder / "config.json").read_text())
    queued = client.post(
        "/api/rewards/dry-run", json={"config": with_rewards({"name": "reward_model", "model": str(inside)})}
    )
    assert queued.status_code == 202, queued.text
    context = WorkerContext(settings=client.settings, store=client.service.store)
    assert reward_dry_run(context, queued.json()["id"]) == "failed"
    failed = client.get(f"/api/rewards/dry-runs/{queued.json()['id']}").json()
    assert failed["status"] == "failed" and "reward_model cannot load" in failed["error"]


def test_a_dry_run_whose_worker_stopped_answering_is_failed_by_the_watchdog(client):
    from datetime import timedelta

    from worker.lifecycle import DEAD_DRY_RUN, WORKER_ID, Heartbeat, fail_stale_dry_runs
    from worker.models import DryRun, utcnow

    store = client.service.store
    with store.session() as session:
        for dry_run_id, beat in (
            ("deadbeef00000001", utcnow() - timedelta(seconds=60)),
            ("deadbeef00000002", utcnow()),
        ):
            session.add(
                DryRun(
                    id=dry_run_id,
                    config=TINY_LM,
                    num_samples=2,
                    seed=0,
                    status="running",
                    worker=WORKER_ID,
                    heartbeat_at=beat,
                )
            )
    assert fail_stale_dry_runs(store, timeout_s=5.0) == ["deadbeef00000001"]
    dead = client.get("/api/rewards/dry-runs/deadbeef00000001").json()
    assert dead["status"] == "failed" and dead["error"] == DEAD_DRY_RUN
    assert client.get("/api/rewards/dry-runs/deadbeef00000002").json()["status"] == "running"
    # a worker that still runs it stamps it, so the watchdog leaves it alone
    heartbeat = Heartbeat(store, 1.0, 5.0, client.settings.artifacts_dir, enqueue=lambda _: None)
    heartbeat.current_dry_run = "deadbeef00000002"
    with store.session() as session:
        session.get(DryRun, "deadbeef00000002").heartbeat_at = utcnow() - timedelta(seconds=60)
    heartbeat.beat()
    assert fail_stale_dry_runs(store, timeout_s=5.0) == []
