"""Reward option schemas, the row checks that name the row and field, architecture checks from a model's
config.json, per-reward metric names, and the engine's reward dry run."""

from __future__ import annotations

import json

import pytest

from adrpo_engine import metrics as M
from adrpo_engine.config import ConfigError, RewardSpec, validate_config
from adrpo_engine.rewards import available_rewards, build_reward, registered_reward, split_model
from adrpo_engine.rewards.schema import (
    RewardRowError,
    check_reward_rows,
    describe_options,
    model_suggestions,
    reward_catalog,
    reward_groups,
)


def rows(*specs: dict) -> list[RewardSpec]:
    return [RewardSpec.model_validate(spec) for spec in specs]


def refusal(specs: list[dict], kind: str = "llm") -> RewardRowError:
    with pytest.raises(RewardRowError) as caught:
        check_reward_rows(rows(*specs), kind)
    return caught.value


def test_every_registered_reward_declares_what_it_needs_and_typed_options():
    for reward in available_rewards():
        for field in describe_options(reward):
            assert field.help, f"{reward.name}.{field.name} has no help line"
            assert field.type in ("bool", "int", "float", "str", "choice")
    length = {f.name: f for f in describe_options(registered_reward("length"))}
    assert (length["target"].type, length["target"].default, length["target"].minimum) == ("int", 50, 1)
    assert length["unit"].type == "choice" and length["unit"].choices == ("words", "chars")
    pattern = {f.name: f for f in describe_options(registered_reward("regex_format"))}["pattern"]
    assert pattern.required and pattern.type == "str"
    assert registered_reward("reward_model").needs == "reward_model"
    assert registered_reward("clip_score").needs == "clip_model"
    assert registered_reward("length").needs == "rule"
    assert registered_reward("remote:http://127.0.0.1:1/x").needs == "remote"  # a URL finds the remote entry


def test_groups_and_suggestions_follow_the_job_kind():
    llm = dict(reward_groups("llm"))
    assert "length" in [r.name for r in llm["Rule (no model)"]]
    assert [r.name for r in llm["Reward model (sequence classification)"]] == ["reward_model"]
    assert not any(r.kind == "image" for members in llm.values() for r in members)
    flow = dict(reward_groups("flow"))
    assert "clip_score" in [r.name for r in flow["CLIP-family model"]]
    clip = model_suggestions(registered_reward("clip_score"))
    assert clip[:2] == ["builtin:tiny-clip", "builtin:shapes-clip"] and "openai/clip-vit-large-patch14" in clip
    assert model_suggestions(registered_reward("reward_model"))[0] == "builtin:tiny-lm-rm"
    catalog = {entry["name"]: entry for entry in reward_catalog()}
    assert catalog["reward_model"]["takes_model"] and catalog["reward_model"]["models"][0] == "builtin:tiny-lm-rm"
    assert [o["name"] for o in catalog["length"]["options"]] == ["target", "unit"]


@pytest.mark.parametrize(
    "specs, kind, field, words",
    [
        ([{"name": "length"}, {"name": "clip_score"}], "llm", "rewards.1.name", "needs a reward of texts"),
        ([{"name": "digits:even"}, {"name": "length"}], "flow", "rewards.1.name", "needs a reward of images"),
        ([{"name": "no_such_reward"}], "llm", "rewards.0.name", "unknown reward"),
        ([{"name": "reward_model"}], "llm", "rewards.0.model", "needs a reward model"),
        (
            [{"name": "digits:even"}, {"name": "clip_score", "model": "builtin:tiny-lm-rm"}],
            "flow",
            "rewards.1.model",
            "is a reward model (sequence classification), not a clip-family model",
        ),
        ([{"name": "reward_model", "model": "builtin:tiny-lm"}], "llm", "rewards.0.model", "base model of llm jobs"),
        ([{"name": "reward_model", "model": "builtin:nope"}], "llm", "rewards.0.model", "unknown built-in model"),
        ([{"name": "digits:even", "model": "builtin:tiny-clip"}], "flow", "rewards.0.model", "takes no model"),
        ([{"name": "digits:class", "options": {"kk": 3}}], "flow", "rewards.0.options.kk", "unknown option"),
        ([{"name": "digits:class", "options": {"k": "four"}}], "flow", "rewards.0.options.k", "integer"),
        ([{"name": "digits:class", "options": {"k": 12}}], "flow", "rewards.0.options.k", "less than or equal to 9"),
        ([{"name": "regex_format"}], "llm", "rewards.0.options.pattern", "Field required"),
        ([{"name": "length", "options": {"unit": "lines"}}], "llm", "rewards.0.options.unit", "'words' or 'chars'"),
        (
            [{"name": "length", "weight": 0}, {"name": "regex_format", "weight": 0, "options": {"pattern": "x"}}],
            "llm",
            "rewards",
            "every weight is 0",
        ),
        ([{"name": "remote:ftp://host/x"}], "llm", "rewards.0.name", "not a remote reward URL"),
        (
            [{"name": "remote:http://127.0.0.1:1/x", "options": {"token": 1}}],
            "llm",
            "rewards.0.options.token",
            "unknown option",
        ),
    ],
)
def test_rows_that_cannot_run_are_refused_naming_row_and_field(specs, kind, field, words):
    error = refusal(specs, kind)
    assert error.field == field
    assert str(error).startswith(f"{field}: ") and words in str(error)


def test_good_rows_pass_and_user_functions_are_left_to_the_callers_policy():
    check_reward_rows(
        rows(
            {"name": "builtin:tiny-lm-task"},
            {"name": "reward_model", "model": "builtin:tiny-lm-rm", "weight": 0.5},
            {"name": "length", "weight": 0},
            {"name": "my_module:score", "options": {"x": 1}},
        ),
        "llm",
    )
    check_reward_rows(rows({"name": "clip_score", "model": "builtin:shapes-clip"}), "flow")
    check_reward_rows(rows({"name": "digits:even", "weight": 0}), "flow", section="eval.rewards")  # no sum there


def write_config(folder, **config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_architecture_of_a_local_folder_is_read_from_its_config(tmp_path):
    causal = write_config(tmp_path / "causal", architectures=["Qwen2ForCausalLM"], model_type="qwen2")
    two = write_config(
        tmp_path / "two",
        architectures=["DebertaV2ForSequenceClassification"],
        model_type="deberta-v2",
        id2label={"0": "NEG", "1": "POS"},
    )
    good = write_config(
        tmp_path / "good", architectures=["Qwen2ForSequenceClassification"], model_type="qwen2", num_labels=1
    )
    bert = write_config(tmp_path / "bert", architectures=["BertModel"], model_type="bert")
    clip = write_config(tmp_path / "clip", architectures=["CLIPModel"], model_type="clip")
    error = refusal([{"name": "length"}, {"name": "reward_model", "model": causal}])
    assert error.field == "rewards.1.model" and "Qwen2ForCausalLM" in str(error)
    assert "not a sequence-classification reward model" in str(error)
    assert "has 2 labels" in str(refusal([{"name": "reward_model", "model": two}]))
    check_reward_rows(rows({"name": "reward_model", "model": good}), "llm")
    assert "not a CLIP model" in str(refusal([{"name": "clip_score", "model": bert}], "flow"))
    check_reward_rows(rows({"name": "clip_score", "model": clip}), "flow")
    check_reward_rows(rows({"name": "reward_model", "model": str(tmp_path / "absent")}), "llm")  # checked on load


def test_architecture_of_a_cached_hub_model_is_read_from_the_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = tmp_path / "models--someone--causal-lm" / "snapshots" / ("a" * 40)
    write_config(snapshot, architectures=["LlamaForCausalLM"], model_type="llama")
    (tmp_path / "models--someone--causal-lm" / "refs").mkdir()
    (tmp_path / "models--someone--causal-lm" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    error = refusal([{"name": "reward_model", "model": "someone/causal-lm"}])
    assert error.field == "rewards.0.model" and "LlamaForCausalLM" in str(error)
    check_reward_rows(rows({"name": "reward_model", "model": "someone/not-cached"}), "llm")  # unknown: not refused


def test_a_model_written_as_an_option_still_reads():
    spec = RewardSpec.model_validate({"name": "clip_score", "options": {"model": "builtin:tiny-clip", "scale": 2}})
    assert spec.model == "builtin:tiny-clip" and spec.options == {"scale": 2}
    aesthetic = RewardSpec.model_validate({"name": "aesthetic", "options": {"clip": "/m/clip", "head": "/m/h.pth"}})
    assert split_model(aesthetic, registered_reward("aesthetic")) == ("/m/clip", {"head": "/m/h.pth"})
    with pytest.raises(ConfigError, match="takes no model"):
        build_reward(RewardSpec(name="length", model="builtin:tiny-lm-rm"), "text")
    with pytest.raises(ConfigError, match="unknown option"):
        build_reward(RewardSpec(name="length", options={"targett": 3}), "text")


def test_per_reward_metric_names():
    assert M.reward_component_names(["length", "reward_model", "length"]) == [
        "reward/length",
        "reward/reward_model",
        "reward/length#2",
    ]
    long = "package." * 12 + "module:function"
    (label,) = M.reward_component_names([long])
    assert len(label) == M.MAX_METRIC_NAME and label.endswith("module:function") and label.startswith("reward/~")
    assert M.is_reward_component("reward/length") and not M.is_reward_component(M.REWARD_MEAN)


def llm_job(rewards: list[dict]) -> dict:
    return {
        "name": "dry",
        "kind": "llm",
        "model": {"name_or_path": "builtin:tiny-lm"},
        "prompts": {"dataset": "builtin:tiny-lm-task"},
        "rewards": rewards,
        "steps": 1,
    }


def test_dry_run_scores_reference_samples_with_each_reward(tmp_path):
    from adrpo_engine.dry_run import reward_dry_run
    from adrpo_engine.models import tiny_lm

    config = validate_config(
        llm_job(
            [
                {"name": "builtin:tiny-lm-task"},
                {"name": "reward_model", "model": "builtin:tiny-lm-rm", "weight": 0.5},
                {"name": "length", "weight": -0.25, "options": {"target": 8}},
            ]
        )
    )
    result = reward_dry_run(config, num_samples=3, seed=1, out_dir=tmp_path)
    labels = ["reward/builtin:tiny-lm-task", "reward/reward_model", "reward/length"]
    assert [row["label"] for row in result.rewards] == labels
    assert result.rewards[1]["model"] == "builtin:tiny-lm-rm"
    assert len(result.samples) == 3 and result.prompt == tiny_lm.task_rows()[0]["prompt"]
    topic = tiny_lm.task_rows()[0]["topic"]
    for sample in result.samples:
        assert set(sample.scores) == set(labels) and sample.text is not None
        # the rule reward is the task's own function of the text (and the prompt row's topic column)
        assert sample.scores[labels[0]] == pytest.approx(tiny_lm.list_reward(sample.text, topic))
        expected = sample.scores[labels[0]] + 0.5 * sample.scores[labels[1]] - 0.25 * sample.scores[labels[2]]
        assert sample.total == pytest.approx(expected, abs=1e-5)
    stored = json.loads((tmp_path / "dry_run.json").read_text())
    assert stored["samples"][0]["scores"] == result.samples[0].scores
    again = reward_dry_run(config, num_samples=3, seed=1, out_dir=tmp_path / "again")
    assert [s.text for s in again.samples] == [s.text for s in result.samples]  # seeded
    lines = result.table_lines()
    assert lines[1].split()[:4] == ["#", *labels[:3]] and len(lines) == 5
    with pytest.raises(ConfigError, match="num_samples"):
        reward_dry_run(config, num_samples=0, out_dir=tmp_path)


def test_dry_run_of_an_image_job_writes_its_reference_images(tmp_path):
    from adrpo_engine.dry_run import reward_dry_run

    config = validate_config(
        {
            "name": "dry-digits",
            "kind": "flow",
            "model": {"name_or_path": "builtin:digits-flow"},
            "prompts": {"texts": ["digit 4"]},
            "rewards": [{"name": "digits:even"}, {"name": "digits:class", "weight": 2, "options": {"k": 4}}],
            "steps": 1,
        }
    )
    result = reward_dry_run(config, num_samples=2, seed=0, out_dir=tmp_path)
    assert result.prompt == "digit 4"
    for sample in result.samples:
        assert sample.image_path and (tmp_path / f"reference-{sample.index}.png").is_file()
        scores = sample.scores
        assert 0.0 <= scores["reward/digits:even"] <= 1.0 and 0.0 <= scores["reward/digits:class"] <= 1.0
        assert sample.total == pytest.approx(scores["reward/digits:even"] + 2 * scores["reward/digits:class"], abs=1e-5)


def test_tiny_lm_rm_tracks_the_task_reward_on_fresh_completions():
    """builtin:tiny-lm-rm is a reward model of the tiny-lm world: its scores must follow the rule reward it
    was trained to regress, on completions it never saw (another seed than its training examples)."""
    import torch

    from adrpo_engine.models import tiny_lm_rm

    info = json.loads((tiny_lm_rm.tiny_lm_rm_path() / "info.json").read_text())
    assert info["heldout_pearson"] >= 0.7
    texts, targets = tiny_lm_rm.examples(200, seed=12345)
    # the reward model reads prompt + completion as one text: the whole example as the completion is the same
    scores = build_reward(RewardSpec(name="reward_model", model="builtin:tiny-lm-rm"), "text")([""] * 200, texts)
    assert tiny_lm_rm.pearson(torch.tensor(scores), torch.tensor(targets)) >= 0.6


def test_cli_lists_reward_schemas_and_tries_rewards(tmp_path):
    from typer.testing import CliRunner

    from adrpo_engine.cli import app

    listed = CliRunner().invoke(app, ["rewards"])
    assert listed.exit_code == 0, listed.output
    assert "reward_model  text, reward model (sequence classification)" in listed.output
    assert "model: required (e.g. builtin:tiny-lm-rm" in listed.output
    assert "target (int, default 50, 1..100000): Length that earns the full reward." in listed.output

    rows = '[{name: "builtin:tiny-lm-task"}, {name: reward_model, model: "builtin:tiny-lm-rm", weight: 0.5}]'
    tried = CliRunner().invoke(
        app, ["rewards", "try", "--preset", "tiny-lm", "--set", f"rewards={rows}", "-n", "2", "--out", str(tmp_path)]
    )
    assert tried.exit_code == 0, tried.output
    assert "weights: reward/builtin:tiny-lm-task x 1  reward/reward_model x 0.5" in tried.output
    assert len(json.loads((tmp_path / "dry_run.json").read_text())["samples"]) == 2

    wrong = CliRunner().invoke(
        app,
        ["rewards", "try", "--preset", "tiny-lm", "--set", 'rewards=[{name: clip_score, model: "builtin:tiny-clip"}]'],
    )
    assert wrong.exit_code == 2 and "rewards.0.name: 'clip_score' scores images" in wrong.output
