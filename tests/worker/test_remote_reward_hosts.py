"""Submitted jobs may send samples only to remote-reward hosts the operator listed."""

import pytest

from adrpo_engine.config import validate_config
from worker.validation import SubmissionError, check_job


def remote_job(url):
    return validate_config({"kind": "llm", "model": {"name_or_path": "builtin:tiny-lm"},
                            "rewards": [{"name": "builtin:tiny-lm-task"}, {"name": url}],
                            "prompts": {"dataset": "builtin:tiny-lm-task"}})


def test_remote_rewards_are_refused_unless_the_operator_lists_the_host(monkeypatch):
    monkeypatch.delenv("ADRPO_REMOTE_REWARD_HOSTS", raising=False)
    with pytest.raises(SubmissionError, match="rewards.1.name: remote reward host 10.0.0.5:8000 is not allowed"):
        check_job(remote_job("remote:http://10.0.0.5:8000/score"))
    monkeypatch.setenv("ADRPO_REMOTE_REWARD_HOSTS", "10.0.0.5:8000, rewards.internal:443")
    check_job(remote_job("remote:http://10.0.0.5:8000/score"))
    check_job(remote_job("https://REWARDS.internal/score"))  # default port of the scheme, case-insensitive
    for refused in ("remote:http://10.0.0.5:8001/score", "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(SubmissionError, match="not allowed"):
            check_job(remote_job(refused))
    with pytest.raises(SubmissionError, match="rewards.1.name: .*not a remote reward URL"):
        check_job(remote_job("remote:gopher://x"))
