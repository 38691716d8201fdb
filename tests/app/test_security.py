"""Issue 9: the holes an outside attacker found, each reproduced through the REST API (TestClient on a
real SQLite store and the embedded broker). Each test failed before its fix."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.worker.conftest import models_cache, service_data_dir, tiny_digits  # noqa: F401, F811 (fixture)
from tests.worker.malformed import BASE, config_with, preset
from worker.models import Comparison, Job
from worker.settings import Settings


def make_client(tmp_path, models_cache, studio=False, **settings_values):
    from app.server import create_app

    settings = Settings(
        data_dir=service_data_dir(tmp_path, models_cache), database_url="", broker_url="", **settings_values
    )
    app = create_app(settings, studio=studio)
    client = TestClient(app)
    client.service, client.settings = app.state.service, settings
    return client


@pytest.fixture
def client(tmp_path, models_cache):
    with make_client(tmp_path, models_cache) as test_client:
        yield test_client


def rows(service, table=Job) -> int:
    with service.store.session() as session:
        return session.scalar(select(func.count()).select_from(table))


def messages(settings) -> int:
    return sum(1 for path in (settings.broker_dir / "queue").glob("*") if path.is_file())


def post_json(client, path, body):
    # json.dumps escapes a lone surrogate as \ud800, as an attacker's client would send it (httpx cannot encode it).
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def refused(client, body, field, path="/api/jobs"):
    response = post_json(client, path, body)
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert detail.startswith(field), detail
    assert rows(client.service) == 0 and messages(client.settings) == 0
    return detail


# ---------------------------------------------------------------- 1. remote code execution


@pytest.mark.parametrize(
    "name", ["pydoc:pipepager", "os:system", "builtins:exec", "subprocess:getoutput", "tests.worker.rce_probe:reward"]
)
def test_user_reward_modules_are_refused_over_the_api_unless_the_operator_allows_them(client, name):
    body = config_with(rewards=[{"name": name}], prompts={"texts": ["echo pwned > /tmp/adrpo-pwned"]})
    detail = refused(client, body, "rewards.0.name")
    assert "ADRPO_USER_REWARD_MODULES" in detail


def test_eval_only_rewards_are_held_to_the_same_allowlist(client):
    body = config_with(eval={"rewards": [{"name": "os:system"}]}, prompts={"texts": ["echo pwned"]})
    detail = refused(client, body, "eval.rewards.0.name")
    assert "ADRPO_USER_REWARD_MODULES" in detail


def test_an_allowlisted_module_and_its_submodules_are_accepted_others_not(tmp_path, models_cache):
    with make_client(tmp_path, models_cache, user_reward_modules="tests.worker") as client:
        ok = client.post("/api/jobs", json=config_with(rewards=[{"name": "tests.worker.rce_probe:reward"}]))
        assert ok.status_code == 201, ok.text
        tricky = client.post("/api/jobs", json=config_with(rewards=[{"name": "tests.workerx:reward"}]))
        assert tricky.status_code == 422 and "ADRPO_USER_REWARD_MODULES" in tricky.json()["detail"]


def test_the_worker_refuses_a_stored_job_with_a_module_outside_the_allowlist_without_importing_it(
    client, tmp_path, monkeypatch
):
    from worker.models import Job as JobRow
    from worker.tasks import WorkerContext, train_job

    marker = tmp_path / "imported"
    monkeypatch.setenv("ADRPO_RCE_PROBE", str(marker))
    config = copy.deepcopy(BASE) | {"steps": 2, "rewards": [{"name": "tests.worker.rce_probe:reward"}]}
    with client.service.store.session() as session:  # a row written before the policy existed
        session.add(
            JobRow(
                id="0123456789abcdef",
                name="old",
                kind="flow",
                algorithm="adrpo",
                config=config,
                status="queued",
                total_steps=2,
            )
        )
    context = WorkerContext(settings=client.settings, store=client.service.store)
    assert train_job(context, "0123456789abcdef") == "failed"
    job = client.get("/api/jobs/0123456789abcdef").json()
    assert "ADRPO_USER_REWARD_MODULES" in job["error"]
    assert not marker.exists()


# ---------------------------------------------------------------- 2. file disclosure


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("prompts.file", "/etc/passwd"),
        ("prompts.file", "/etc/no-such-file"),
        ("prompts.dataset", "/"),
        ("model.name_or_path", "/etc"),
    ],
)
def test_local_paths_outside_the_roots_are_refused_without_revealing_anything(client, key, value):
    detail = refused(client, preset(**{key: value}), key)
    assert "root:" not in detail and "does not exist" not in detail and repr(value) not in detail
    assert ("ADRPO_UPLOADS_DIR" if key.startswith("prompts") else "ADRPO_MODELS_DIR") in detail


def test_an_existing_and_a_missing_file_get_the_same_answer(client):
    answers = {
        client.post("/api/jobs", json=preset(**{"prompts.file": path})).json()["detail"]
        for path in ("/etc/passwd", "/etc/passwd-no-such", "/root/.ssh/id_rsa")
    }
    assert len(answers) == 1


def test_an_accelerate_config_outside_the_uploads_root_is_not_read_to_validate_it(client, tmp_path):
    # The schema reads this file as YAML while it validates; over the API the root is checked first, so an
    # existing YAML file, a file that is no YAML and a missing one all get the policy's answer (also in a sweep).
    yaml_file = tmp_path / "accelerate.yaml"
    yaml_file.write_text("distributed_type: FSDP\n")
    key = "resources.accelerate_config"
    answers = set()
    for path in (str(yaml_file), "/etc/passwd", "/etc/no-such.yaml"):
        answers.add(refused(client, preset(**{key: path, "resources.processes": 2}), key))
        sweep = {"preset": "digits-even", "grid": {key: [path]}, "seeds": [0]}
        answers.add(client.post("/api/sweeps", json=sweep).json()["detail"].replace("grid: ", ""))
    assert len(answers) == 1 and "ADRPO_UPLOADS_DIR" in answers.pop()


def test_paths_under_the_roots_are_accepted_and_symlinks_out_of_them_are_not(client):
    uploads = client.settings.uploads_dir
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / "prompts.txt").write_text("a digit\n")
    ok = client.post("/api/jobs", json=preset(**{"prompts.file": str(uploads / "prompts.txt")}))
    assert ok.status_code == 201, ok.text
    os.symlink("/etc/passwd", uploads / "innocent.txt")
    with client.service.store.session() as session:
        session.query(Job).delete()
    (client.settings.broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    for path in (client.settings.broker_dir / "queue").glob("*"):
        path.unlink()
    refused(client, preset(**{"prompts.file": str(uploads / "innocent.txt")}), "prompts.file")


def test_a_reward_model_path_is_held_to_the_models_root(client):
    body = config_with(
        kind="llm",
        algorithm="adrpo",
        model={"name_or_path": "builtin:tiny-lm"},
        rewards=[{"name": "reward_model", "options": {"model": "/etc"}}],
    )
    refused(client, body, "rewards.0.model")  # the old spelling reads as the row's model, held the same
    body["rewards"] = [{"name": "reward_model", "model": "/etc"}]
    refused(client, body, "rewards.0.model")
    flow = config_with(rewards=[{"name": "aesthetic", "options": {"head": "/etc/passwd"}}])
    refused(client, flow, "rewards.0.options.head")


def test_a_reward_model_outside_the_root_is_not_read_to_check_its_architecture(client, tmp_path):
    # The architecture check reads config.json: outside ADRPO_MODELS_DIR the refusal must be the policy's,
    # the same whether a model is there or not, and must not quote what the file says.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"architectures": ["SecretForCausalLM"], "model_type": "x"}))
    details = []
    for folder in (outside, tmp_path / "absent"):
        body = config_with(
            kind="llm",
            model={"name_or_path": "builtin:tiny-lm"},
            prompts={"dataset": "builtin:tiny-lm-task"},
            rewards=[{"name": "reward_model", "model": str(folder)}],
        )
        details.append(refused(client, body, "rewards.0.model").replace(str(folder), "PATH"))
    assert details[0] == details[1] and "Secret" not in details[0] and "ADRPO_MODELS_DIR" in details[0]


def test_the_store_is_never_a_prompt_source_even_under_a_careless_root(tmp_path, models_cache):
    data = service_data_dir(tmp_path, models_cache)
    with make_client(tmp_path, models_cache, uploads_dir=data) as client:
        for target in (data / "adrpo.db", data / "runs" / "x" / "config.yaml", data / "broker" / "queue" / "m"):
            detail = client.post("/api/jobs", json=preset(**{"prompts.file": str(target)})).json()["detail"]
            assert detail.startswith("prompts.file") and "ADRPO_UPLOADS_DIR" in detail


# ---------------------------------------------------------------- 3. the studio's file route


def test_the_studio_file_route_serves_only_what_pages_show(tmp_path, models_cache):
    with make_client(tmp_path, models_cache, studio=True) as client:
        settings = client.settings
        run = settings.run_dir("0123456789abcdef")
        files = {
            "samples/step-000003/0.png": True,
            "comparisons/c1/reference-0.png": True,
            "samples/audio/eval-0.wav": True,  # an audio job's clips: what its sample rows play
            "comparisons/c2/clip.wav": True,
            "checkpoints/step-000004/clip.wav": False,
            "exports/adapter-step-000004.zip": True,
            "exports/job-01234567-step-000004-comfyui.safetensors": True,
            "exports/job-01234567-step-000004-merged.zip": True,
            "exports/job-01234567-step-000004-merged.zip.error": False,
            "exports/.merge-x1/job-01234567-step-000004-merged/model.safetensors": False,  # a merge in progress
            "checkpoints/step-000004/trainer_state.pt": False,
            "checkpoints/step-000004/adapter_model.safetensors": False,
            "config.yaml": False,
            "job.log": False,
            "samples/step-000003/notes.txt": False,
            "metrics.jsonl": False,
        }
        for relative in files:
            (run / relative).parent.mkdir(parents=True, exist_ok=True)
            (run / relative).write_bytes(b"\x89PNG fake")
        for name in ("adrpo.db-wal", "adrpo.db-shm"):
            (settings.data_dir / name).write_bytes(b"wal")
        for relative, shown in files.items():
            status = client.get(f"/gradio_api/file={run / relative}").status_code
            assert status == (200 if shown else 403), (relative, status)
        dry_runs = settings.artifacts_dir / "dry-runs"
        for relative, shown in {"d1/reference-0.png": True, "d1/dry_run.json": False, "reference-0.png": False}.items():
            (dry_runs / relative).parent.mkdir(parents=True, exist_ok=True)
            (dry_runs / relative).write_bytes(b"\x89PNG fake")
            status = client.get(f"/gradio_api/file={dry_runs / relative}").status_code
            assert status == (200 if shown else 403), (relative, status)  # a reward dry run's images only
        for target in (
            settings.data_dir / "adrpo.db",
            settings.data_dir / "adrpo.db-wal",
            Path("/etc/passwd"),
            run / "samples" / ".." / "config.yaml",
            settings.data_dir / "no-such-file",
        ):
            assert client.get(f"/gradio_api/file={target}").status_code == 403, target
            assert client.get(f"/gradio_api/file/{target}").status_code == 403, target


# ---------------------------------------------------------------- 4. auth that cannot be half on


@pytest.mark.parametrize("present", ["auth_user", "auth_password"])
def test_half_an_auth_configuration_is_refused(tmp_path, present):
    with pytest.raises(ValueError, match="ADRPO_AUTH_USER .*ADRPO_AUTH_PASSWORD|ADRPO_AUTH_PASSWORD .*ADRPO_AUTH_USER"):
        Settings(data_dir=tmp_path, **{present: "x"})


def test_docs_routes_need_the_credentials_when_auth_is_on(tmp_path, models_cache):
    with make_client(tmp_path, models_cache, studio=True, auth_user="ada", auth_password="s3cret") as client:
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, auth=("ada", "s3cret")).status_code == 200, path
        assert "/api/jobs" in client.get("/openapi.json", auth=("ada", "s3cret")).json()["paths"]


def test_credentials_are_compared_without_short_circuit(monkeypatch):
    import secrets

    from app.auth import credentials_match

    calls = []
    real = secrets.compare_digest
    monkeypatch.setattr(secrets, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    settings = Settings(auth_user="ada", auth_password="s3cret")
    assert not credentials_match(settings, "eve", "s3cret")
    assert not credentials_match(settings, "ada", "wrong")
    assert credentials_match(settings, "ada", "s3cret")
    assert len(calls) == 6  # user and password compared every time


def test_serve_refuses_a_public_bind_without_auth_and_says_when_auth_is_off(tmp_path, monkeypatch):
    from app.cli import serve_notice

    monkeypatch.setenv("ADRPO_DATA_DIR", str(tmp_path))
    off = Settings(data_dir=tmp_path)
    on = Settings(data_dir=tmp_path, auth_user="ada", auth_password="s3cret")
    with pytest.raises(ValueError, match="--insecure"):
        serve_notice(off, "0.0.0.0", insecure=False)
    assert "WITHOUT authentication" in serve_notice(off, "0.0.0.0", insecure=True)
    assert "WITHOUT authentication" in serve_notice(off, "127.0.0.1", insecure=False)
    assert serve_notice(on, "0.0.0.0", insecure=False) is None


def test_the_serve_command_exits_2_on_a_public_bind_without_auth(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import app

    for name in ("ADRPO_AUTH_USER", "ADRPO_AUTH_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADRPO_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--no-worker"])
    assert result.exit_code == 2 and "--insecure" in result.output
    monkeypatch.setenv("ADRPO_AUTH_USER", "ada")
    result = CliRunner().invoke(app, ["serve", "--no-worker"])
    assert result.exit_code == 2 and "ADRPO_AUTH_PASSWORD" in result.output


# ---------------------------------------------------------------- 5. text that breaks the job list


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (preset(**{"prompts.texts": ["x\ud800y"]}), "prompts.texts.0"),
        (config_with(prompts={"texts": ["fine", "nul\x00here"]}), "prompts.texts.1"),
        (preset(name="bell\x07"), "name"),
        (config_with(rewards=[{"name": "digits:class", "options": {"k\ud800": 1}}]), "rewards.0.options.k"),
    ],
)
def test_text_that_cannot_be_stored_is_refused_before_anything_is_stored(client, body, field):
    refused(client, body, field)
    assert client.get("/api/jobs").status_code == 200


def test_a_comparison_prompt_with_a_lone_surrogate_is_refused(client):
    job = client.post("/api/jobs", json=preset(**tiny_digits())).json()
    response = post_json(client, f"/api/jobs/{job['id']}/comparisons", {"prompt": "a\ud800", "seed": 1})
    assert response.status_code == 422 and response.json()["detail"].startswith("prompt")
    assert rows(client.service, Comparison) == 0
    assert client.get(f"/api/jobs/{job['id']}/comparisons").status_code == 200


def test_a_failure_after_the_row_is_written_leaves_no_row(client, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ConnectionError("broker went away")

    monkeypatch.setattr(client.service.celery, "send_task", broken)
    response = client.post("/api/jobs", json=preset(**tiny_digits()))
    assert response.status_code == 503 and response.json()["detail"].startswith("broker")
    assert rows(client.service) == 0 and client.get("/api/jobs").json() == []


# ---------------------------------------------------------------- 6. 500s from inputs


def test_integers_beyond_sql_range_are_4xx_naming_the_field(client):
    job = client.post("/api/jobs", json=preset(**tiny_digits())).json()
    big = 2**63
    for path, field in (
        (f"/api/jobs/{job['id']}/metrics?since={big}", "since"),
        (f"/api/jobs/{job['id']}/samples?since={big}", "since"),
        (f"/api/jobs/{job['id']}/adapter.zip?step={big}", "step"),
    ):
        response = client.get(path)
        assert response.status_code == 422 and response.json()["detail"].startswith(field), path
    response = client.post(f"/api/jobs/{job['id']}/comparisons", json={"prompt": "any", "step": big})
    assert response.status_code == 422 and response.json()["detail"].startswith("step")


def test_deeply_nested_options_are_refused(client):
    options: dict = {}
    node = options
    for _ in range(900):
        node["a"] = {}
        node = node["a"]
    detail = refused(client, config_with(rewards=[{"name": "digits:even", "options": options}]), "rewards.0.options")
    assert "nested deeper" in detail


def test_unknown_keys_in_clone_and_comparison_requests_are_refused(client):
    job = client.post("/api/jobs", json=preset(**tiny_digits())).json()
    clone = client.post(f"/api/jobs/{job['id']}/clone", json={"overides": {"steps": 3}})
    assert clone.status_code == 422 and clone.json()["detail"].startswith("overides")
    compare = client.post(f"/api/jobs/{job['id']}/comparisons", json={"prompt": "x", "adapter_path": "/etc"})
    assert compare.status_code == 422 and compare.json()["detail"].startswith("adapter_path")
    assert rows(client.service) == 1 and rows(client.service, Comparison) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"steps": True}, "steps"),
        ({"steps": "150"}, "steps"),
        ({"beta0": "0.1"}, "beta0"),
        ({"flow.orw_normalize": "yes"}, "flow.orw_normalize"),
        ({"lora.rank": False}, "lora.rank"),
    ],
)
def test_json_types_are_not_coerced(client, overrides, field):
    refused(client, preset(**overrides), field)


def test_options_of_registered_rewards_are_checked_at_submission(client):
    detail = refused(client, config_with(rewards=[{"name": "digits:class", "options": {"kk": 3}}]), "rewards.0.options")
    assert "kk" in detail


def test_ids_that_cannot_be_ids_are_404(client):
    for job_id in ("a%00b", "x" * 300, "%E2%98%83"):
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert client.get(f"/api/comparisons/{job_id}").status_code == 404


# ---------------------------------------------------------------- Also: flow adrpo with beta0 = 0


def test_flow_adrpo_with_beta0_zero_and_a_clip_range_is_refused(client):
    detail = refused(client, preset(beta0=0.0, a_min=-0.1, a_max=0.1), "beta0")
    assert "clip" in detail
    ok = client.post("/api/jobs", json=preset(beta0=0.0, **tiny_digits()))  # empty range: plain reward weighting
    assert ok.status_code == 201, ok.text
