import json

import pytest

from adrpo_engine.config import ConfigError, PromptsConfig
from adrpo_engine.data import PromptSampler, eval_prompts, load_prompts


def test_inline_txt_and_jsonl_prompts(tmp_path):
    (tmp_path / "p.txt").write_text("a cat\n\n a dog \n")
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "2+2?", "answer": "4"}) + "\n")
    rows = load_prompts(PromptsConfig(texts=["x"], file=str(tmp_path / "p.txt")))
    assert [r.prompt for r in rows] == ["x", "a cat", "a dog"]
    rows = load_prompts(PromptsConfig(file=str(tmp_path / "p.jsonl")))
    assert rows[0].prompt == "2+2?" and rows[0].columns == {"answer": "4"}


def test_missing_prompts_and_columns_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no prompts"):
        load_prompts(PromptsConfig())
    with pytest.raises(ConfigError, match="does not exist"):
        load_prompts(PromptsConfig(file=str(tmp_path / "nope.txt")))
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "?"}) + "\n")
    with pytest.raises(ConfigError, match="prompts.column"):
        load_prompts(PromptsConfig(file=str(tmp_path / "q.jsonl")))


def test_sampler_is_a_function_of_seed_and_step_and_covers_each_epoch():
    rows = load_prompts(PromptsConfig(texts=[f"p{i}" for i in range(6)]))
    sampler = PromptSampler(rows, seed=3)
    first_epoch = sampler.batch(1, 3) + sampler.batch(2, 3)
    assert sorted(r.prompt for r in first_epoch) == [f"p{i}" for i in range(6)]
    assert PromptSampler(rows, seed=3).batch(5, 4) == sampler.batch(5, 4)
    assert eval_prompts(PromptsConfig(texts=["a"]), rows, 2) == rows[:2]
