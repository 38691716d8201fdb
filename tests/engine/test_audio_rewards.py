"""mc_answer / mc_format on hand-written completions (MMAU's convention: the option in an <answer> tag)."""

import pytest

from adrpo_engine.config import ConfigError, RewardSpec
from adrpo_engine.rewards import build_reward, registered_reward
from adrpo_engine.rewards.choice import choices_list, parse_choices
from adrpo_engine.rewards.schema import RewardRowError, check_reward_rows, describe_options, reward_groups

PROMPT = "How many beeps do you hear? (A) 1 (B) 2 (C) 3 (D) 4"


def mc(completions, answers, prompt=PROMPT, choices=None, **options):
    reward = build_reward(RewardSpec(name="mc_answer", options=options), "text")
    columns = {"answer": answers}
    if choices is not None:
        columns["choices"] = choices
    return reward([prompt] * len(completions), completions, **columns)


def test_options_are_parsed_from_the_prompt_and_from_string_lists():
    assert parse_choices(PROMPT) == ["1", "2", "3", "4"]
    assert parse_choices("Which tone is longer? (A) the first (B) the second") == ["the first", "the second"]
    assert parse_choices("no options here") == []
    assert choices_list("['Man', 'Woman', 'Child']") == ["Man", "Woman", "Child"]
    assert choices_list(["yes", "no"]) == ["yes", "no"]
    assert choices_list("(A) cat (B) dog") == ["cat", "dog"]


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("<answer>2</answer>", 1.0),
        ("<answer>B</answer>", 1.0),
        ("<answer>(B)</answer>", 1.0),
        ("<answer>(B) 2</answer>", 1.0),
        ("<think>two short beeps</think><answer> 2 </answer>", 1.0),
        ("<answer>3</answer>", 0.0),
        ("<answer>(B) 3</answer>", 0.0),  # letter and text disagree: no choice
        ("<answer>2 or 3</answer>", 0.0),  # two options named: no choice
        ("<answer>1</answer> then <answer>2</answer>", 1.0),  # the last tag counts
        ("I hear 2 beeps", 1.0),  # no tag: the whole completion is read
        ("", 0.0),
    ],
)
def test_mc_answer_reads_the_chosen_option(completion, score):
    assert mc([completion], ["2"]) == [score]


def test_answer_may_be_a_letter_and_options_a_column():
    assert mc(
        ["<answer>the second</answer>"], ["B"], prompt="Which tone is longer?", choices=[["the first", "the second"]]
    ) == [1.0]
    assert mc(["<answer>woman</answer>"], ["Woman"], prompt="Who speaks?", choices=["['Man', 'Woman']"]) == [1.0]


def test_require_tag_and_rows_without_answer():
    assert mc(["2"], ["2"], require_tag=True) == [0.0]
    assert mc(["<answer>2</answer>"], [None]) == [None]
    assert mc(["<answer>2</answer>"], ["2"], prompt="no options") == [None]
    with pytest.raises(ConfigError, match="needs the prompt column 'answer'"):
        build_reward(RewardSpec(name="mc_answer"), "text")([PROMPT], ["x"])


def test_mc_format():
    reward = build_reward(RewardSpec(name="mc_format"), "text")
    texts = [
        "<answer>2</answer>",
        "<think>hm</think> <answer>B</answer>",
        "2",
        "<answer></answer>",
        "<answer>1</answer><answer>2</answer>",
        "x <answer>2</answer>",
    ]
    assert reward([PROMPT] * len(texts), texts) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_the_picker_describes_both_rewards_options_for_audio_and_text_jobs():
    answer = {f.name: f for f in describe_options(registered_reward("mc_answer"))}
    assert list(answer) == ["column", "choices_column", "tag", "require_tag"]
    assert (answer["column"].type, answer["column"].default) == ("str", "answer")
    assert (answer["require_tag"].type, answer["require_tag"].default) == ("bool", False)
    assert [f.name for f in describe_options(registered_reward("mc_format"))] == ["tag"]
    for kind in ("audio", "llm"):
        rules = [r.name for r in dict(reward_groups(kind))["Rule (no model)"]]
        assert "mc_answer" in rules and "mc_format" in rules


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"name": "mc_answer", "options": {"tag": "a b"}}, "rewards.0.options.tag", "should match pattern"),
        ({"name": "mc_format", "options": {"tag": ""}}, "rewards.0.options.tag", "should match pattern"),
        ({"name": "mc_answer", "options": {"column": ""}}, "rewards.0.options.column", "at least 1 character"),
        ({"name": "mc_answer", "options": {"require_tag": "maybe"}}, "rewards.0.options.require_tag", "boolean"),
        ({"name": "mc_answer", "options": {"answer": "x"}}, "rewards.0.options.answer", "unknown option"),
    ],
)
def test_bad_options_are_refused_naming_the_row_and_field(spec, field, words):
    with pytest.raises(RewardRowError, match=words) as caught:
        check_reward_rows([RewardSpec.model_validate(spec)], "audio")
    assert caught.value.field == field


def test_a_custom_tag_and_choices_column_are_used():
    reward = build_reward(
        RewardSpec(name="mc_answer", options={"tag": "choice", "choices_column": "options", "require_tag": True}),
        "text",
    )
    columns = {"answer": ["dog", "dog"], "options": [["cat", "dog"], ["cat", "dog"]]}
    assert reward(["Which animal?"] * 2, ["<choice>B</choice>", "<answer>B</answer>"], **columns) == [1.0, 0.0]
    fmt = build_reward(RewardSpec(name="mc_format", options={"tag": "choice"}), "text")
    assert fmt(["q"] * 2, ["<choice>B</choice>", "<answer>B</answer>"]) == [1.0, 0.0]


def test_the_reward_dry_run_scores_reference_answers_to_the_first_clip(tmp_path):
    from adrpo_engine.config import validate_config
    from adrpo_engine.dry_run import reward_dry_run

    config = validate_config(
        {
            "kind": "audio",
            "model": {"name_or_path": "builtin:tiny-audio-lm"},
            "rewards": [{"name": "mc_answer"}, {"name": "mc_format", "weight": 0.5}],
            "prompts": {"dataset": "builtin:audio-tones", "limit": 4},
            "llm": {"max_new_tokens": 8},
        }
    )
    result = reward_dry_run(config, num_samples=3, seed=1, out_dir=tmp_path)
    assert result.prompt.startswith(("How many", "Is the", "Which")) and len(result.samples) == 3
    for sample in result.samples:
        answer, fmt = sample.scores["reward/mc_answer"], sample.scores["reward/mc_format"]
        assert answer in (0.0, 1.0) and fmt in (0.0, 1.0)
        assert sample.total == pytest.approx(answer + 0.5 * fmt)
        assert sample.text is not None and sample.image_path is None
    again = reward_dry_run(config, num_samples=3, seed=1, out_dir=tmp_path / "again")
    assert [s.text for s in again.samples] == [s.text for s in result.samples]  # the seed fixes the samples
