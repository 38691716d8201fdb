"""A hub id the hub does not know is refused at submission, naming the field; one it knows, or any id
while the hub cannot be asked, is accepted (its worker then fails in seconds if it cannot load it)."""

import pytest

from adrpo_engine.config import validate_config
from tests.fake_hub import KNOWN, empty_cache, fake_hub  # noqa: F401 (fixtures)
from worker.validation import SubmissionError, check_job


def hub_job(model: str):
    return validate_config(
        {
            "kind": "llm",
            "model": {"name_or_path": model},
            "rewards": [{"name": "builtin:tiny-lm-task"}],
            "prompts": {"dataset": "builtin:tiny-lm-task"},
        }
    )


def test_an_unknown_hub_id_is_refused_at_submission(fake_hub, empty_cache):
    with pytest.raises(SubmissionError, match=r"^model.name_or_path: 'foo/bar' does not exist on the Hugging Face"):
        check_job(hub_job("foo/bar"))
    check_job(hub_job(KNOWN))


def test_offline_any_well_formed_id_is_accepted(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_job(hub_job("foo/bar"))
