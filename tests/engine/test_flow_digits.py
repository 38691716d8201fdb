"""The flow-matching trainer on the built-in digits model (fast: the network is a small MLP)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from adrpo_engine import diversity as V
from adrpo_engine import metrics as M
from adrpo_engine.config import ConfigError, RewardSpec
from adrpo_engine.models import digits as D
from adrpo_engine.models import digits_data as Dd
from adrpo_engine.models import digits_pretrain as Dp
from adrpo_engine.presets import preset_config
from adrpo_engine.progress import RecordingSink
from adrpo_engine.rewards import build_reward
from adrpo_engine.runner import compare, train


def digits_config(**overrides):
    base = {
        "steps": 2,
        "group_size": 4,
        "prompts_per_step": 2,
        "sample_every": 100,
        "checkpoint_every": 100,
        "flow.sample_steps": 4,
    }
    return preset_config("digits-even", {**base, **overrides})


def test_prompts_map_to_classes():
    assert D.prompt_to_class("any digit") == Dd.NULL_CLASS
    assert D.prompt_to_class("  Digit 3 ") == 3
    with pytest.raises(ConfigError, match="'digit K'"):
        D.prompt_to_class("a cat")


def test_digit_rewards_read_real_digits():
    images, labels = Dd.load_digit_data()
    picked = torch.cat([torch.nonzero(labels == k)[:3, 0] for k in range(10)])
    batch = images[picked].view(-1, 1, 8, 8)
    even = torch.tensor(build_reward(RewardSpec(name="digits:even"), "image")(batch, [""] * len(batch)))
    is_even = labels[picked] % 2 == 0
    assert even[is_even].min() > 0.5 and even[~is_even].max() < 0.5
    probabilities = Dp.digit_classifier().probabilities(batch)
    assert torch.allclose(even, probabilities[:, [0, 2, 4, 6, 8]].sum(1), atol=1e-6)
    seven = build_reward(RewardSpec(name="digits:class", options={"k": 7}), "image")(batch, [""] * len(batch))
    assert torch.allclose(torch.tensor(seven), probabilities[:, 7], atol=1e-6)
    with pytest.raises(ConfigError, match="options.k: Input should be less than or equal to 9"):
        build_reward(RewardSpec(name="digits:class", options={"k": 12}), "image")


def test_diversity_measures_by_hand():
    uniform_even = torch.zeros(5, 10)
    uniform_even[torch.arange(5), torch.arange(0, 10, 2)] = 1.0
    assert V.class_entropy(uniform_even) == pytest.approx(math.log(5), abs=1e-5)
    assert V.class_entropy(torch.eye(10)[[6, 6, 6]]) == pytest.approx(0.0, abs=1e-6)
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])
    assert V.mean_pairwise_distance(points) == pytest.approx((5 + 4 + 3) / 3)


def test_pretrained_model_follows_its_class():
    policy = D.DigitsPolicy()
    labels = torch.arange(10).repeat(5)
    latents = policy.sample({"labels": labels}, torch.Generator().manual_seed(0), steps=8, guidance=2.0)
    predicted = Dp.digit_classifier().probabilities(policy.decode(latents)).argmax(-1)
    assert (predicted == labels).float().mean() > 0.9


def test_adrpo_step_logs_every_flow_metric(tmp_path):
    sink = RecordingSink()
    result = train(digits_config(steps=1), tmp_path, sink)
    metrics = sink.steps[1]
    assert set(M.FLOW) <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values())
    assert 0.0 <= metrics[M.BETA_MIN] <= metrics[M.BETA_MAX] <= 1.0  # beta0 - clip(A, -beta0, beta0)
    assert "diversity/feature_dist" in metrics
    assert result.checkpoint is not None and (result.checkpoint / "adapter_model.safetensors").is_file()
    reference = [s for s in sink.samples if s.step == 0]
    assert reference and all(s.role == "reference" for s in reference)
    assert (tmp_path / reference[0].image_path).is_file()
    assert (tmp_path / "samples" / "before_after.png").is_file()
    assert any("before/after grid" in line for line in sink.logs)


@pytest.mark.parametrize("algorithm", ["fixed", "orw"])
def test_baselines_run(tmp_path, algorithm):
    sink = RecordingSink()
    train(digits_config(algorithm=algorithm, beta0=0.3), tmp_path, sink)
    metrics = sink.steps[2]
    assert math.isfinite(metrics[M.LOSS])
    # fixed-beta and ORW-CFM-W2 use one W2 weight for every sample: beta0 (ORW's alpha)
    assert metrics[M.BETA_MIN] == pytest.approx(0.3) and metrics[M.BETA_MAX] == pytest.approx(0.3)


def test_resume_replays_the_uninterrupted_run(tmp_path):
    straight = digits_config(steps=6, checkpoint_every=3)
    train(straight, tmp_path / "straight", RecordingSink())
    train(digits_config(steps=3, checkpoint_every=3), tmp_path / "resumed", RecordingSink())
    train(straight, tmp_path / "resumed", RecordingSink())
    a = load_file(tmp_path / "straight" / "checkpoints" / "step-000006" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "step-000006" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in a.items() if "lora_B" in k)


def test_comparison_same_seed_same_reference(tmp_path):
    config = digits_config(steps=3, checkpoint_every=3)
    train(config, tmp_path / "run", RecordingSink())
    adapter = tmp_path / "run" / "checkpoints" / "step-000003"
    first = compare(config, adapter, "any digit", 5, 3, tmp_path / "a")
    second = compare(config, adapter, "any digit", 5, 3, tmp_path / "b")
    assert [s.role for s in first] == ["reference"] * 3 + ["policy"] * 3
    assert all(s.step == 3 and s.seed == 5 for s in first)
    assert [s.reward for s in first] == [s.reward for s in second]
    for a, b in zip(first, second):
        assert open(a.image_path, "rb").read() == open(b.image_path, "rb").read()
    # the trained adapter changes the samples drawn from the same noise
    assert [s.reward for s in first[:3]] != [s.reward for s in first[3:]]


def test_a_prompt_the_digits_model_cannot_read_fails_before_training(tmp_path):
    config = digits_config(**{"prompts.texts": ["any digit", "a cat"]})
    with pytest.raises(ConfigError, match="'a cat' is not a prompt of builtin:digits-flow"):
        train(config, tmp_path, RecordingSink())
    assert not (tmp_path / "metrics.jsonl").exists()


def test_digits_even_preset_raises_reward_without_collapse(tmp_path):
    """The demo's promise, on the full preset (~3-8 s): P(even) rises clearly and the even digits stay."""
    from adrpo_engine.trainers.flow import FlowTrainer, generate_images

    config = preset_config("digits-even", {"sample_every": 1000, "checkpoint_every": 1000})
    trainer = FlowTrainer(config, tmp_path, RecordingSink())
    trainer.run()
    classifier = Dp.digit_classifier()
    _, before = generate_images(trainer.policy, config, "any digit", 99, 256, adapter=False)
    _, after = generate_images(trainer.policy, config, "any digit", 99, 256, adapter=True)
    p_before, p_after = classifier.probabilities(before), classifier.probabilities(after)
    assert p_after[:, 0::2].sum(1).mean() > p_before[:, 0::2].sum(1).mean() + 0.2
    shares = torch.bincount(p_after.argmax(-1), minlength=10).float() / 256
    assert (shares[0::2] > 0.04).sum() >= 4, shares  # no collapse onto one or two even digits


def test_even_spread_by_hand():
    from adrpo_engine.diversity import even_spread

    # two samples, one a sure 0 and one a sure 6 (odd mass ignored): spread = ln 2
    probabilities = torch.zeros(2, 10)
    probabilities[0, 0] = 1.0
    probabilities[1, 6] = 0.5
    probabilities[1, 7] = 0.5
    assert even_spread(probabilities) == pytest.approx(math.log(2), abs=1e-6)
    assert even_spread(torch.full((3, 10), 0.1)) == pytest.approx(math.log(5), abs=1e-6)
