"""The kind registry: every entry resolves, the service accepts what the engine accepts, and no code
outside the registry switches on a kind's name."""

import re
from pathlib import Path
from typing import get_args

import pytest

from adrpo_engine import kinds
from adrpo_engine.config import ConfigError, validate_config
from adrpo_engine.presets import PRESETS
from adrpo_engine.progress import SAMPLE_KINDS
from adrpo_engine.trainers.base import BaseTrainer
from worker.validation import SubmissionError, resolve_submission

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", kinds.kind_names())
def test_each_kind_names_importable_parts_and_consistent_metrics(name):
    spec = kinds.get_kind(name)
    assert issubclass(spec.load_trainer(), BaseTrainer)
    assert callable(spec.load_comparer())
    assert spec.divergence in spec.metric_names
    assert set(spec.spread_metrics) <= set(spec.metric_names)
    assert spec.sample_kind in SAMPLE_KINDS and spec.reward_kind in ("text", "image")
    if spec.policy_factory is not None:
        assert callable(kinds.load_target(spec.policy_factory))
    assert kinds.builtin_models(name), "every kind has a built-in model to start from"
    # The studio's custom start is a valid config of the kind.
    starter = {"kind": name, "model": {"name_or_path": kinds.builtin_models(name)[0].name}, **spec.starter_config()}
    assert validate_config(starter).kind == name


def test_every_builtin_entry_points_at_something_that_exists():
    for model in kinds.BUILTIN_MODELS.values():
        for target in (model.path, model.policy, model.diversity):
            if target is not None:
                assert callable(kinds.load_target(target)), target
    for source in kinds.PROMPT_SOURCES.values():
        rows = kinds.load_target(source.rows)()
        assert rows and all("prompt" in row for row in rows), source.name


def test_unknown_kind_and_unknown_builtin_name_the_field():
    with pytest.raises(ConfigError, match="^kind: unknown kind 'video'"):
        kinds.get_kind("video")
    with pytest.raises(ConfigError, match="model.name_or_path: unknown built-in llm model 'builtin:tiny-sd3'"):
        kinds.builtin_model_of("builtin:tiny-sd3", "llm")
    with pytest.raises(ConfigError, match="kind"):
        validate_config(
            {"kind": "video", "model": {"name_or_path": "x"}, "rewards": [{"name": "r"}], "prompts": {"texts": ["a"]}}
        )


@pytest.mark.parametrize("source", sorted(kinds.PROMPT_SOURCES))
def test_the_service_accepts_every_builtin_prompt_source_the_engine_has(source):
    # builtin:digits once loaded in the CLI and was refused by the service (a second list had drifted).
    kind = kinds.PROMPT_SOURCES[source].kind
    preset = next(p.name for p in PRESETS.values() if p.demo and p.config["kind"] == kind)
    job = resolve_submission(None, preset, {"prompts.texts": [], "prompts.file": source})
    assert job.prompts.file == source
    with pytest.raises(SubmissionError, match="prompts.file: unknown built-in source 'builtin:nope'"):
        resolve_submission(None, preset, {"prompts.texts": [], "prompts.file": "builtin:nope"})


def test_default_a_min_is_the_kinds_rule_and_the_form_says_so():
    from app.ui import forms

    flow = {**PRESETS["digits-even"].config, "algorithm": "fixed", "beta0": 0.2}
    assert validate_config(flow).clip_low == pytest.approx(kinds.get_kind("flow").default_a_min("fixed", 0.2))
    assert validate_config(flow).clip_low == pytest.approx(-0.1)
    assert validate_config({**flow, "algorithm": "adrpo"}).clip_low == pytest.approx(-0.2)
    assert "−β₀/2 for fixed beta flow" in forms.A_MIN_PLACEHOLDER


SWITCH = re.compile(r"""kind\s*(==|!=)\s*["'](%s)["']|\{\s*["'](%s)["']\s*:""" % (("|".join(kinds.KINDS),) * 2))


def test_no_code_outside_the_registry_switches_on_a_kind_name():
    offenders = []
    for package in ("adrpo_engine", "worker", "app"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name == "kinds.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if SWITCH.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_service_views_know_every_sample_kind_the_engine_logs():
    from worker.views import SampleKind

    assert set(get_args(SampleKind)) == set(SAMPLE_KINDS)
    assert {kinds.get_kind(name).sample_kind for name in kinds.kind_names()} <= set(SAMPLE_KINDS)
