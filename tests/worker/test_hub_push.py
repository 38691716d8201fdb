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


def test_the_job_page_pushes_with_the_typed_token_never_the_servers(service, pushed_job, fake_hub, monkeypatch):  # noqa: F811
    from app.ui.share import push_message

    monkeypatch.setenv("HF_TOKEN", "hf_the_servers_own")
    typed = "hf_typed_on_the_page"
    steps = [c.step for c in service.list_checkpoints(pushed_job.id)]
    message = push_message(service, pushed_job.id, " me/from-page ", steps[0], True, typed)
    assert message.startswith("**Pushed** (private) to `me/from-page`: ") and typed not in message
    assert fake_hub.authorizations and all(auth == f"Bearer {typed}" for auth in fake_hub.authorizations)
    with zipfile.ZipFile(service.adapter_zip(pushed_job.id, steps[0])) as archive:
        assert fake_hub.commits == [{name: archive.read(name) for name in archive.namelist()}]


def test_a_page_push_without_a_token_or_with_bad_fields_uploads_nothing(service, pushed_job, fake_hub, monkeypatch):  # noqa: F811
    from app.ui.share import push_message

    monkeypatch.setenv("HF_TOKEN", "hf_the_servers_own")
    assert push_message(service, pushed_job.id, "me/x", "newest", False, "  ") == (
        "**Not pushed:** token: type a Hugging Face token with write access (it is not stored)."
    )
    assert push_message(service, pushed_job.id, "../etc", "newest", False, TOKEN) == (
        "**Not pushed:** repository: '../etc' is not a hub repository id like 'user/name'"
    )
    missing = push_message(service, pushed_job.id, "me/x", 999, False, TOKEN)
    assert missing == f"**Not pushed:** step: job {pushed_job.id} has no checkpoint at step 999"
    assert push_message(service, pushed_job.id, "me/x", "7; rm", False, TOKEN).startswith(
        "**Not pushed:** checkpoint: '7; rm' is not one of"
    )
    assert push_message(service, None, "me/x", "newest", False, TOKEN) == "**Not pushed:** pick a job first."
    assert not fake_hub.created and not fake_hub.commits and not fake_hub.authorizations


def test_a_refusal_that_echoes_the_token_reaches_the_page_without_it(service, pushed_job, fake_hub, monkeypatch):  # noqa: F811
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from app.ui.share import push_message

    def refuse(self, *args, **kwargs):
        answer = httpx.Response(401, request=httpx.Request("POST", "http://hub/api/repos/create"))
        raise HfHubHTTPError(f"401 Client Error: invalid credentials {TOKEN}", response=answer)

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    message = push_message(service, pushed_job.id, "me/x", "newest", False, TOKEN)
    refused = "push: the hub refused the upload to 'me/x': 401 Client Error: invalid credentials ***"
    assert message == f"**Not pushed:** {refused}"
