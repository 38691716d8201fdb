"""A built-in model's first build leaves the caller's random state alone: a job trains the same adapter whether
its base model was built on the way or loaded from the cache (the 2-process tests found it: rank 0 built the
model, so its LoRA initialisation came from other draws than a later run's on the cached model). And it is
built once: published whole with its marker, never again after, and a failed build leaves nothing behind."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from adrpo_engine.builds import COMPLETE, build_once, isolated_build
from adrpo_engine.config import validate_config
from adrpo_engine.runner import train
from adrpo_engine.trainers.base import seed_everything

AUDIO_JOB = {
    "kind": "audio",
    "model": {"name_or_path": "builtin:tiny-audio-lm"},
    "rewards": [{"name": "mc_answer"}],
    "prompts": {"dataset": "builtin:audio-tones", "limit": 8},
    "steps": 1,
    "group_size": 2,
    "prompts_per_step": 2,
    "lr": 1e-2,
    "checkpoint_every": 1,
    "sample_every": 100,
    "lora": {"rank": 2, "alpha": 4},
    "llm": {"max_new_tokens": 4, "eval_samples": 1},
}


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_a_build_block_leaves_every_global_generator_where_it_was():
    seed_everything(3)
    expected = draws()
    seed_everything(3)
    with isolated_build():
        seed_everything(0)
        draws()
        assert torch.get_num_threads() == 1
    assert draws() == expected


def test_a_job_trains_the_same_adapter_on_a_fresh_and_on_a_cached_base_model(tmp_path, monkeypatch):
    monkeypatch.setenv("ADRPO_DATA_DIR", str(tmp_path / "data"))
    config = validate_config(AUDIO_JOB)
    train(config, tmp_path / "built", resume=False)  # builds builtin:tiny-audio-lm into the empty data dir
    train(config, tmp_path / "cached", resume=False)
    name = "checkpoints/step-000001/adapter_model.safetensors"
    built, cached = load_file(str(tmp_path / "built" / name)), load_file(str(tmp_path / "cached" / name))
    assert built.keys() == cached.keys()
    assert all(torch.equal(built[key], cached[key]) for key in built)


def test_a_cache_is_built_once_and_published_with_its_marker(tmp_path):
    target = tmp_path / "model-v1"
    builds = []

    def build(folder: Path) -> None:
        builds.append(folder)
        (folder / "weights").write_text("w")

    assert build_once(target, build) == target
    assert build_once(target, build) == target
    assert len(builds) == 1 and not builds[0].exists()
    assert (target / "weights").read_text() == "w" and (target / COMPLETE).is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model-v1"]


def test_a_marker_the_build_writes_itself_is_kept(tmp_path):
    target = tmp_path / "model-v1"
    build_once(target, lambda folder: (folder / "info.json").write_text("{}"), marker="info.json")
    assert sorted(path.name for path in target.iterdir()) == ["info.json"]
    assert (target / "info.json").read_text() == "{}"


def test_a_failed_build_leaves_no_staging_folder_and_publishes_nothing(tmp_path):
    def build(folder: Path) -> None:
        (folder / "half-written").write_text("w")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        build_once(tmp_path / "model-v1", build)
    assert list(tmp_path.iterdir()) == []


def test_an_incomplete_folder_left_at_the_target_is_replaced_by_the_build(tmp_path):
    target = tmp_path / "model-v1"
    target.mkdir()
    (target / "stale-half").write_text("x")  # e.g. copied by hand, or an older layout without the marker
    build_once(target, lambda folder: (folder / "weights").write_text("w"))
    assert sorted(path.name for path in target.iterdir()) == [COMPLETE, "weights"]


def test_the_tiny_clip_build_leaves_the_callers_generators_alone(tmp_path, monkeypatch):
    from adrpo_engine.models.tiny_sd3 import tiny_clip_path

    monkeypatch.setenv("ADRPO_DATA_DIR", str(tmp_path / "data"))
    seed_everything(5)
    expected = draws()
    seed_everything(5)
    assert (tiny_clip_path() / COMPLETE).is_file()
    assert draws() == expected
