"""`adrpo train --preset tiny-lm` end to end (the built-in model is built once into the test data dir)."""

import json

from typer.testing import CliRunner

from adrpo_engine.cli import app
from adrpo_engine.kinds import get_kind


def test_cli_trains_the_tiny_lm_preset_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--preset", "tiny-lm", "--set", "steps=3", "--set", "prompts_per_step=2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "reward/mean: first step" in result.output and "step 0 reference" in result.output
    assert "(reference) ->" in result.output and "(fine-tuned)" in result.output
    assert "[reward " in result.output  # rewards of the samples are shown, not eaten as rich markup
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert set(get_kind("llm").metric_names) <= set(rows[-1])
    assert (out / "config.yaml").is_file()
    assert (out / "checkpoints" / "step-000003" / "adapter_model.safetensors").is_file()


def test_cli_bad_set_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    for bad in ("llm.temperature=0", "llm.decode=beam", "lora.rank=x", "llm.nope=1"):
        result = CliRunner().invoke(app, ["train", "--preset", "tiny-lm", "--set", bad, "--out", str(out)])
        assert result.exit_code == 2, (bad, result.output)
        assert bad.split("=")[0] in result.output
        assert not out.exists()


def test_cli_bad_model_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--preset", "tiny-lm", "--set", f"model.name_or_path={tmp_path / 'nope'}",
                                      "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "model.name_or_path" in result.output
    assert not out.exists()
