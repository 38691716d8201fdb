"""Hub ids before loading (adrpo_engine/hub.py): the local cache, HF_HUB_OFFLINE, and a hub that answers
404, 200 or nothing (tests/fake_hub.py: this machine has no route to huggingface.co)."""

from __future__ import annotations

import pytest
import torch

from adrpo_engine import hub
from adrpo_engine.config import ConfigError, ModelConfig
from adrpo_engine.models.causal_lm import load_causal_lm
from tests.fake_hub import KNOWN, empty_cache, fake_hub  # noqa: F401 (fixtures)


def test_the_hub_tells_a_missing_id_from_a_known_one(fake_hub, empty_cache):
    assert hub.probe(KNOWN) is hub.HubAnswer.EXISTS
    assert hub.probe("foo/bar") is hub.HubAnswer.MISSING
    with pytest.raises(ConfigError, match=r"^model.name_or_path: 'foo/bar' does not exist on the Hugging Face hub"):
        hub.require_loadable("foo/bar")


def test_an_unreachable_hub_or_offline_mode_fails_fast_in_one_line(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    assert hub.probe("foo/bar") is hub.HubAnswer.UNREACHABLE
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.probe("foo/bar") is hub.HubAnswer.OFFLINE
    with pytest.raises(ConfigError) as caught:
        load_causal_lm(ModelConfig(name_or_path="foo/bar"), torch.device("cpu"), torch.float32)
    message = str(caught.value)
    assert "\n" not in message and "stacktrace" not in message
    # Refused by our check before from_pretrained: no download retries, one readable line.
    assert message.startswith("model.name_or_path: 'foo/bar' is not in the local Hugging Face cache")


def test_a_cached_model_needs_no_hub(empty_cache, monkeypatch):
    snapshot = empty_cache / "models--org--cached" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (empty_cache / "models--org--cached" / "refs").mkdir()
    (empty_cache / "models--org--cached" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.probe("org/cached") is hub.HubAnswer.CACHED
    hub.require_loadable("org/cached")  # no error: the loader may start


def test_local_folders_and_builtins_are_not_hub_ids(tmp_path):
    assert not hub.is_hub_id("builtin:tiny-lm")
    assert not hub.is_hub_id(str(tmp_path))
    assert not hub.is_hub_id("./models/x")
    assert hub.is_hub_id("Qwen/Qwen2.5-0.5B-Instruct")
