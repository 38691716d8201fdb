"""The studio's main handlers through gradio_client against the real server (API + studio + one
embedded worker): preview, launch (refused and accepted), job detail, comparison, runs, job actions."""

from __future__ import annotations

import json

import pytest

from adrpo_engine.presets import PRESETS
from app.ui import forms
from tests.app.studio_server import running_studio
from tests.waiting import wait_for

pytest.importorskip("app.server", reason="needs the job service (branch svc)")
pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    with running_studio(tmp_path_factory.mktemp("studio") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def client(studio):
    client = Client(studio.url, verbose=False)
    yield client
    client.close()  # its open event stream would otherwise hold the server's graceful shutdown


def form_args(**changes):
    values = forms.form_from_config(PRESETS["digits-even"].config, "digits-even")
    values.update(changes)
    # the reward rows are a gr.State: not a parameter of the API endpoints (the session's rows are used)
    return [values[name] for name in forms.FIELDS if name != "rewards"]


def test_preview_shows_the_exact_config_or_the_field_error(client):
    yaml_text, note, *_ = client.predict(*form_args(steps=9, beta0=0.3), api_name="/preview_config")
    assert "steps: 9" in yaml_text and "beta0: 0.3" in yaml_text and "valid" in note
    yaml_text, note, *_ = client.predict(*form_args(group_size=1), api_name="/preview_config")
    assert "Group size must be at least 2" in note  # in words, with the exact key as the detail line
    assert "group_size: Input should be greater than or equal to 2 (got 1)" in note
    assert yaml_text.startswith("# The form is not a valid job config yet")  # never the last valid config


def test_invalid_launch_is_refused_in_words_and_stores_nothing(client):
    errors, result, *_ = client.predict(*form_args(a_min=0.5, a_max=0.1), api_name="/launch")
    assert "Please fix" in errors and "a_min (0.5) must be <= a_max (0.1)" in errors
    assert result == ""
    empty, table, _ = client.predict(None, api_name="/list_jobs")
    assert empty["visible"] is True and table["visible"] is False  # "No jobs yet — try the digits-even demo"


def poll_detail(client, job_id):
    header, *rest = client.predict(job_id, 0.6, None, api_name="/job_detail")
    return header, rest


def test_launch_train_compare_and_view_runs(client, studio):
    errors, result, *_ = client.predict(*form_args(steps=8, name="client-run"), api_name="/launch")
    assert "Please fix" not in errors and "Launched **client-run**" in result
    job_id = result.split("`")[1]

    def finished():
        header, rest = poll_detail(client, job_id)
        return (header, rest) if ("succeeded" in header or "failed" in header) else None

    header, rest = wait_for(finished, 120, "the job to finish")
    assert "succeeded" in header, header + studio.log()[-3000:]
    # Opening the finished job draws everything: all curves and both sample rows.
    header, rest = poll_detail(client, job_id)
    curves = rest[:5]
    assert all(curve["type"] == "plotly" for curve in curves)
    reference, policy = rest[6]["value"], rest[7]["value"]
    assert len(reference) >= 4 and len(policy) >= 4 and ".card.png" in str(policy[0])
    assert "name: client-run" in rest[9]

    status, *_ = client.predict(job_id, -1, "any digit", 3, 4, api_name="/request_comparison")
    assert "prompt *any digit*, seed 3" in status  # the id is kept in this session's state

    def compared():
        status, reference, policy, texts, _, clip = client.predict(job_id, api_name="/comparison_status")
        return (status, reference, policy) if "succeeded" in status or "failed" in status else None

    status, reference, policy = wait_for(compared, 90, "the comparison")
    assert "succeeded" in status and "mean reward: reference" in status
    assert len(reference["value"]) == 4 and len(policy["value"]) == 4

    overlay, diversity, divergence, _, note = client.predict([job_id], "reward/mean", 0.0, api_name="/runs_view")
    assert note == "1 run(s)."
    assert overlay["type"] == diversity["type"] == divergence["type"] == "plotly"
    marks = [trace for trace in json.loads(overlay["plot"])["data"] if trace["mode"] == "markers"]
    assert [m["marker"]["symbol"] for m in marks] == [["circle", "star"]]  # the job's status, loaded with it
    assert marks[0]["text"] == ["start at step 1", "end (succeeded) at step 8 of 8"]

    message, _ = client.predict(job_id, api_name="/cancel_job")
    assert "Could not cancel" in message and "succeeded" in message
