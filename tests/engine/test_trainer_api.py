"""The Python API (`from adrpo_engine import ADRPOConfig, ADRPOTrainer`): README's example runs as
written, TRL-signature callables are the rewards, and bad arguments fail with the schema's messages."""

import json
import re
from pathlib import Path

import pytest

from adrpo_engine.config import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- python-api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no python-api-example block"
    return match.group(1)


def test_the_readme_example_trains_tiny_lm_with_a_python_reward(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_python_example(), "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    result = namespace["result"]
    assert result.status == "succeeded" and result.last_step == 3
    rows = [json.loads(line) for line in Path("runs/short-lists/metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert all(-1.0 <= row["reward/mean"] <= 0.0 for row in rows)  # the README's reward: -len/100, capped
    assert result.checkpoint is not None and (result.checkpoint / "adapter_model.safetensors").is_file()


def test_arguments_map_onto_the_job_schema_and_bad_ones_name_the_key():
    from adrpo_engine import ADRPOConfig, ADRPOTrainer

    def ones(prompts, completions, **kwargs):
        return [1.0] * len(completions)

    trainer = ADRPOTrainer(
        "builtin:tiny-lm",
        ones,
        ADRPOConfig(num_generations=4, beta=0.02, max_completion_length=16, overrides={"llm.top_p": 0.9}),
        train_dataset=[{"prompt": "list fruits:"}],
    )
    job = trainer.config
    assert (job.kind, job.group_size, job.beta0, job.llm.max_new_tokens, job.llm.top_p) == ("llm", 4, 0.02, 16, 0.9)
    assert job.rewards[0].name.startswith("python:ones-")
    with pytest.raises(ConfigError, match="group_size"):
        ADRPOTrainer("builtin:tiny-lm", ones, ADRPOConfig(num_generations=1), ["x"])
    assert ADRPOTrainer("builtin:digits-flow", "digits:even", ADRPOConfig(), ["any digit"]).config.kind == "flow"
