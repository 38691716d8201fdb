import json
import textwrap

import pytest
import torch

from adrpo_engine.config import ConfigError, PromptsConfig, RewardSpec
from adrpo_engine.data import load_prompts, repeat_columns
from adrpo_engine.rewards import WeightedRewards, available_rewards, build_reward


def reward(name, **options):
    return build_reward(RewardSpec(name=name, options=options), "text")


def test_text_rewards_are_registered():
    names = {r.name for r in available_rewards("text")}
    assert {"answer_match", "regex_format", "length", "reward_model", "builtin:tiny-lm-task"} <= names


def test_answer_match_numeric_and_exact():
    numeric = reward("answer_match", numeric=True)
    completions = ["so the total is 1,234.", "#### 42", "no number here", "7"]
    answers = ["Natalia sold 1234 clips\n#### 1234", "#### 42", "#### 3", None]
    assert numeric(["q"] * 4, completions, answer=answers) == [1.0, 1.0, 0.0, None]
    exact = reward("answer_match", column="label", answer_prefix="Answer:")
    assert exact(["q", "q"], ["blah Answer:  Paris ", "Answer: Lyon"], label=["paris", "Paris"]) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="'answer'"):
        numeric(["q"], ["1"], solution=["1"])


def test_regex_format_and_length_by_hand():
    fmt = reward("regex_format", pattern=r"<answer>\d+</answer>")
    assert fmt(["p", "p"], ["x <answer>12</answer>", "<answer>a</answer>"]) == [1.0, 0.0]
    whole = reward("regex_format", pattern=r"\d+", fullmatch=True)
    assert whole(["p", "p"], [" 12 ", "12 apples"]) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="not a valid regex"):
        reward("regex_format", pattern="(")
    words = reward("length", target=4)
    assert words(["p"] * 3, ["a b c d", "a b", "a b c d e f g h i"]) == [1.0, 0.5, 0.0]
    chars = reward("length", target=10, unit="chars")
    assert chars(["p"], ["x" * 12]) == [pytest.approx(0.8)]


def test_tiny_lm_task_reward_by_hand():
    task = reward("builtin:tiny-lm-task")
    prompts = ["list fruits:"] * 4 + ["name some body parts:"]
    completions = [
        " apple, pear, plum, grape.",  # 4 distinct on-topic of a target of 10
        " apple, pear, apple, cat.",  # 2 distinct - 1 off-topic (a repeat earns nothing): 1/10
        " apple, pear, plum, grape, lemon, mango, peach, cherry, melon, kiwi, lime.",  # 11 >= 10: clipped to 1
        " apple. cat, dog",  # only the text before the first '.' counts
        " arm, leg, nose",  # topic from the prompt; an unfinished list (no '.') earns half: 3/10 / 2
    ]
    assert task(prompts, completions) == pytest.approx([0.4, 0.1, 1.0, 0.1, 0.15])
    assert task(["?"], [" cat, dog."], topic=["animals"]) == pytest.approx([0.2])


def test_deceptive_tiny_lm_reward_by_hand():
    task = reward("builtin:tiny-lm-deceptive")
    eight = " apple, pear, plum, grape, lemon, mango, peach, cherry."
    completions = [
        " apple, pear, plum.",  # the common, easy pattern: 3 items
        " apple, pear, plum, grape.",  # the valley: 4-7 items
        " apple, pear, plum, grape, lemon, mango, peach.",  # 7: still the valley
        eight,  # the rare pattern: 8 or more
        eight[:-1],  # unfinished (no '.')
        " apple, pear, plum, apple.",  # a repeat
        " apple, pear, cat.",  # an off-topic item
        " apple, pear.",  # fewer than 3
    ]
    assert task(["list fruits:"] * len(completions), completions) == pytest.approx(
        [0.5, 0.1, 0.1, 1.0, 0.0, 0.0, 0.0, 0.0]
    )
    assert task(["?"], [" cat, dog, cow."], topic=["animals"]) == pytest.approx([0.5])


def test_user_function_with_trl_signature_and_weights(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent("""
        def shouty(prompts, completions, bonus=0.0, **columns):
            return [float(c.isupper()) + bonus if c else None for c in completions]
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    specs = [
        RewardSpec(name="my_rewards:shouty", weight=2.0, options={"bonus": 0.5}),
        RewardSpec(name="length", weight=-1.0, options={"target": 2}),
    ]
    total, parts = WeightedRewards(specs, "text")(["p"] * 3, ["HI THERE", "hi", ""])
    # shouty: 1.5, 0.5, None(=0); length: 1, 0.5, 0 -> 2*shouty - length
    assert total.tolist() == pytest.approx([2.0, 0.5, 0.0])
    assert set(parts) == {"reward/my_rewards:shouty", "reward/length"}
    with pytest.raises(ConfigError, match="cannot import"):
        build_reward(RewardSpec(name="no_such_module_xyz:f"), "text")
    with pytest.raises(ConfigError, match="image reward"):
        build_reward(RewardSpec(name="digits:even"), "text")


def test_reward_model_scores_like_a_direct_forward(tmp_path):
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForSequenceClassification

    from adrpo_engine.models.tiny_lm import corpus_lines, train_tokenizer

    tokenizer = train_tokenizer(corpus_lines(200))
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    scorer = reward("reward_model", model=str(tmp_path / "rm"), batch_size=2)
    prompts, completions = ["list fruits:", "tools:", "colors:"], [" apple.", " saw, axe, rake.", " red"]
    got = scorer(prompts, completions)
    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path / "rm")
    with torch.no_grad():
        want = [model(**loaded(p + c, return_tensors="pt")).logits[0, 0].item() for p, c in zip(prompts, completions)]
    assert got == pytest.approx(want, abs=1e-4)
    with pytest.raises(ConfigError, match="reward_model cannot load"):
        reward("reward_model", model=str(tmp_path / "missing"))


def test_prompts_from_a_datasets_folder_keep_their_columns(tmp_path):
    import datasets

    datasets.DatasetDict(
        {"test": datasets.Dataset.from_dict({"question": ["1+1?", "2+3?"], "answer": ["2", "5"]})}
    ).save_to_disk(str(tmp_path / "ds"))
    rows = load_prompts(PromptsConfig(dataset=str(tmp_path / "ds"), split="test", column="question"))
    assert [r.prompt for r in rows] == ["1+1?", "2+3?"]
    assert repeat_columns(rows, 2) == {"answer": ["2", "2", "5", "5"]}
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "x", "answer": "1"}) + "\n")
    check = reward("answer_match", numeric=True)
    file_rows = load_prompts(PromptsConfig(file=str(tmp_path / "p.jsonl")))
    assert check(["x"], ["= 1"], **repeat_columns(file_rows, 1)) == [1.0]
