"""Evaluation on held-out prompts with fixed noise: a known digits checkpoint, a miniature LM, text diversity."""

from __future__ import annotations

import math

import pytest
import torch

from adrpo_engine import evaluation as E
from adrpo_engine import metrics as M
from adrpo_engine.config import ConfigError, apply_overrides, validate_config
from adrpo_engine.models import digits as D
from adrpo_engine.presets import preset_config
from adrpo_engine.runner import train
from adrpo_engine.trainers.base import list_checkpoints


def digits_job(**overrides):
    base = {"steps": 4, "group_size": 8, "prompts_per_step": 2, "sample_every": 100, "checkpoint_every": 4,
            "flow.sample_steps": 4, "eval.samples_per_prompt": 12, "lr": 5e-3}
    return preset_config("digits-even", {**base, **overrides})


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A known checkpoint: 4 steps of digits-even (step 4)."""
    config = digits_job()
    run_dir = tmp_path_factory.mktemp("digits-eval")
    train(config, run_dir, resume=False)
    return config, list_checkpoints(run_dir)[-1]


def test_words_distinct_n_and_token_overlap_by_hand():
    assert E.words("Apple, pear.") == ["apple", ",", "pear", "."]
    assert E.distinct_n(["a b a", "a c"], 1) == pytest.approx(3 / 5)  # {a, b, c} of 5 words
    assert E.distinct_n(["a b a", "a c"], 2) == pytest.approx(3 / 3)  # ab, ba, ac
    assert E.distinct_n(["a a a a"], 2) == pytest.approx(1 / 3)
    assert E.distinct_n([""], 1) == 0.0
    # {a,b} vs {a,c}: 1 - 1/3; {a,b} vs {a,b}: 0; {a,c} vs {a,b}: 1 - 1/3
    assert E.token_overlap_distance(["a b", "a c", "b a"]) == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    assert E.token_overlap_distance(["same"]) == 0.0


def test_reference_eval_is_the_reference_model_on_the_fixed_noise(digits_run):
    config, _ = digits_run
    (point,) = E.evaluate(config, [(0, None)])
    assert point.role == "reference" and point.step == 0
    assert point.prompts == 1 and point.samples_per_prompt == 12 and not point.held_out  # fell back to training prompts
    assert point.counts[M.REWARD_MEAN] == 12 and point.counts[M.W2] == 12
    assert point.metrics[M.W2] == 0.0 and point.metrics[E.W2_COUPLING] == 0.0
    # The same number by hand: the pre-trained net from seed eval.seed + 0, rewarded by P(even).
    policy = D.DigitsPolicy()
    noise = torch.randn((12, D.DATA_DIM), generator=torch.Generator().manual_seed(config.eval.seed))
    latents = policy.sample(policy.null_cond(12), torch.Generator(), config.flow.sample_steps, noise=noise)
    even = D.digit_classifier().probabilities(D.to_images(latents))[:, 0::2].sum(dim=1)
    assert point.metrics[M.REWARD_MEAN] == pytest.approx(float(even.mean()), abs=1e-5)
    assert point.metrics[M.REWARD_STD] == pytest.approx(float(even.std()), abs=1e-4)


def test_a_checkpoint_eval_is_reproducible_and_measures_its_drift(digits_run):
    config, (step, path) = digits_run
    reference, policy = E.evaluate(config, [(0, None), (step, path)])
    again = E.evaluate(config, [(step, path)])[0]
    assert policy.step == step == 4 and policy.role == "policy"
    assert policy.metrics == again.metrics  # same noise, same checkpoint: the same numbers
    assert policy.metrics[M.W2] > 0 and policy.metrics[E.W2_COUPLING] > 0
    assert policy.metrics[M.REWARD_MEAN] != reference.metrics[M.REWARD_MEAN]
    for name in (M.DIVERSITY, "diversity/class_entropy", "diversity/feature_dist"):
        assert math.isfinite(policy.metrics[name]) and policy.counts[name] == 1  # one prompt group


def test_the_noise_is_shared_by_jobs_with_different_seeds(digits_run):
    config, _ = digits_run
    other = digits_job(seed=7, beta0=0.2)
    assert E.evaluate(config, [(0, None)])[0].metrics == E.evaluate(other, [(0, None)])[0].metrics


def test_held_out_prompts_and_eval_only_rewards(digits_run):
    config, (step, path) = digits_run
    held = digits_job(**{"eval.prompts": ["digit 2", "digit 3"], "eval.samples_per_prompt": 4,
                         "eval.rewards": [{"name": "digits:class", "options": {"k": 3}}]})
    point = E.evaluate(held, [(step, path)])[0]
    assert point.held_out and point.prompts == 2
    assert point.counts[M.REWARD_MEAN] == 8 and point.counts["eval/digits:class"] == 8
    assert 0.0 <= point.metrics["eval/digits:class"] <= 1.0
    with pytest.raises(ConfigError, match="eval.samples_per_prompt"):
        digits_job(**{"eval.samples_per_prompt": 1})
    with pytest.raises(ConfigError, match="eval.bogus"):
        digits_job(**{"eval.bogus": 1})


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    from adrpo_engine.models.tiny_lm import build_model, corpus_lines, train_tokenizer

    folder = tmp_path_factory.mktemp("mini-lm")
    tokenizer = train_tokenizer(corpus_lines(300))
    torch.manual_seed(0)
    model = build_model(len(tokenizer), tokenizer.eos_token_id)
    small = type(model.config)(**{**model.config.to_dict(), "hidden_size": 32, "intermediate_size": 64,
                                  "num_attention_heads": 2, "num_key_value_heads": 1})
    type(model)(small).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_llm_eval_reports_kl_over_all_samples(lm_dir, tmp_path):
    config = validate_config(apply_overrides({
        "kind": "llm", "model": {"name_or_path": str(lm_dir)},
        "rewards": [{"name": "length", "options": {"target": 12, "unit": "chars"}}],
        "prompts": {"dataset": "builtin:tiny-lm-task"}, "steps": 2, "group_size": 4, "prompts_per_step": 2,
        "lr": 5e-2, "beta0": 0.0, "algorithm": "fixed", "checkpoint_every": 2, "sample_every": 100,
        "lora": {"rank": 4, "alpha": 8}, "llm": {"max_new_tokens": 8, "eval_samples": 1},
    }, {"eval.prompts": ["list fruits:", "tools:"], "eval.samples_per_prompt": 4}))
    train(config, tmp_path / "run", resume=False)
    step, path = list_checkpoints(tmp_path / "run")[-1]
    reference, policy = E.evaluate(config, [(0, None), (step, path)])
    assert reference.metrics[M.KL] == 0.0 and reference.counts[M.REWARD_MEAN] == 8
    # beta0 = 0: training logs no KL term, but the eval measures the drift over every sample.
    assert policy.metrics[M.KL] > 0 and policy.counts[E.KL_SEQ] == 8
    assert policy.counts[M.KL] == policy.counts[M.ENTROPY] > 0  # every completion token counted
    for name in (M.DIVERSITY, E.DISTINCT_1, E.DISTINCT_2, E.TOKEN_OVERLAP, M.ENTROPY):
        assert math.isfinite(policy.metrics[name]), name
    assert policy.metrics == E.evaluate(config, [(step, path)])[0].metrics
