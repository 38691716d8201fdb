"""A job submission (API / studio) naming a tracker that is not installed is refused before anything is stored."""

from __future__ import annotations

import pytest

from adrpo_engine import trackers as T
from worker.validation import SubmissionError, resolve_submission


def test_submission_with_an_uninstalled_tracker_names_the_field(monkeypatch):
    monkeypatch.setitem(T.TRACKERS, "mlflow", T.TrackerInfo("mlflow", "adrpo_no_such_module", "mlflow"))
    with pytest.raises(SubmissionError) as refused:
        resolve_submission(None, "digits-even", {"report_to": ["mlflow"]})
    assert refused.value.field == "report_to"
    assert "not installed" in str(refused.value) and "adrpo-studio[mlflow]" in str(refused.value)


def test_submission_with_installed_trackers_is_accepted():
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    config = resolve_submission(None, "digits-even", {"report_to": ["tensorboard", "mlflow"]})
    assert config.report_to == ["tensorboard", "mlflow"]
