"""`adrpo push JOB --repo user/name`: the adapter zip's folder (adapter, model card, config) reaches the
hub through huggingface_hub, with the token from HF_TOKEN and never echoed (tests/fake_hub.py)."""

import zipfile

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.fake_hub import fake_hub  # noqa: F401 (fixture)
from worker.hub_push import PushError, push_to_hub
from worker.tasks import train_job

from .conftest import tiny_digits

TOKEN = "hf_test_secret_never_printed"


@pytest.fixture
def pushed_job(service, worker_context, settings, monkeypatch):
    for key, value in settings.environment().items():
        monkeypatch.setenv(key, value)  # the CLI reads the same store
    job = service.submit(preset="digits-even", overrides=tiny_digits(name="push-demo"))
    assert train_job(worker_context, job.id) == "succeeded"
    return job


def test_push_uploads_the_adapter_folder_with_its_card(service, pushed_job, fake_hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with zipfile.ZipFile(service.adapter_zip(pushed_job.id)) as archive:
        expected = {name: archive.read(name) for name in archive.namelist()}

    dry = CliRunner().invoke(app, ["push", pushed_job.id, "--repo", "me/adrpo-digits", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert {line.split("  (")[0] for line in dry.output.splitlines()} == set(expected)
    assert not fake_hub.commits  # a dry run uploads nothing

    result = CliRunner().invoke(app, ["push", pushed_job.id, "--repo", "me/adrpo-digits", "--private"])
    assert result.exit_code == 0, result.output
    assert "pushed: " in result.output and TOKEN not in result.output
    assert [(c["organization"], c["name"], c.get("visibility")) for c in fake_hub.created] == [
        ("me", "adrpo-digits", "private")
    ]
    assert fake_hub.commits == [expected]
    assert b"More Information Needed" not in expected["README.md"] and "config.yaml" in expected
    assert all(auth == f"Bearer {TOKEN}" for auth in fake_hub.authorizations)


def test_bad_repo_ids_and_an_unreachable_hub_are_one_line(service, pushed_job, monkeypatch):
    bad = CliRunner().invoke(app, ["push", pushed_job.id, "--repo", "../etc"])
    assert bad.exit_code == 2 and "--repo: '../etc' is not a hub repository id" in bad.output
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(PushError, match="cannot reach the hub"):
        push_to_hub(service, pushed_job.id, "me/x")
