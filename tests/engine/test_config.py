import pytest
from typer.testing import CliRunner

from adrpo_engine.cli import app
from adrpo_engine.config import ConfigError, JobConfig, validate_config
from adrpo_engine.config_io import apply_overrides, parse_override
from adrpo_engine.presets import PRESETS, preset_config

MINIMAL = {
    "kind": "llm",
    "model": {"name_or_path": "builtin:tiny-lm"},
    "rewards": [{"name": "length"}],
    "prompts": {"texts": ["List three fruits."]},
}


def test_defaults_follow_the_paper():
    cfg = validate_config(MINIMAL)
    assert cfg.beta0 == 0.04 and cfg.clip_low == -0.04 and cfg.clip_high == 0.04
    assert cfg.algorithm == "adrpo" and cfg.adv_scale == "group"


def test_clip_defaults_follow_beta0_override():
    cfg = validate_config(apply_overrides(MINIMAL, {"beta0": 0.1}))
    assert (cfg.clip_low, cfg.clip_high) == (-0.1, 0.1)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_and_round_trips_through_yaml(name, tmp_path):
    cfg = preset_config(name)
    cfg.save(tmp_path / "c.yaml")
    import yaml

    assert validate_config(yaml.safe_load((tmp_path / "c.yaml").read_text())) == cfg


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"beta0": -1}, "beta0"),
        ({"beta0": "abc"}, "beta0"),
        ({"bta0": 0.1}, "bta0"),
        ({"lora.rank": 0}, "lora.rank"),
        ({"a_min": 0.5, "a_max": 0.1}, "a_min"),
        ({"group_size": 1}, "group_size"),
        ({"algorithm": "orw"}, "orw"),
        ({"name": "../etc"}, "name"),
        ({"llm.top_p": 1.5}, "llm.top_p"),
    ],
)
def test_bad_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as error:
        validate_config(apply_overrides(MINIMAL, overrides))
    assert field in str(error.value)


def test_fixed_flow_requires_a_min_above_minus_beta0():
    flow = {**MINIMAL, "kind": "flow", "algorithm": "fixed"}
    assert validate_config(flow).clip_low == pytest.approx(-0.02)
    with pytest.raises(ConfigError, match="unbounded below"):
        validate_config({**flow, "a_min": -0.04})


def test_a_max_above_beta0_is_an_advisory():
    cfg = validate_config({**MINIMAL, "a_max": 0.1})
    assert any("frac_neg" in note for note in cfg.advisories())


def test_parse_override_reads_yaml_values():
    assert parse_override("lora.rank=8") == ("lora.rank", 8)
    assert parse_override("lora.target_modules=[q_proj, v_proj]") == ("lora.target_modules", ["q_proj", "v_proj"])
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_cli_config_error_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--preset", "tiny-lm", "--set", "beta0=-3", "--out", str(out)])
    assert result.exit_code == 2
    assert "beta0" in result.output and "greater than or equal to 0" in result.output
    assert not out.exists()


def test_a_mistyped_key_names_the_key_it_resembles(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--preset", "tiny-lm", "--set", "stepz=10", "--out", str(out)])
    assert result.exit_code == 2 and "stepz: unknown key (did you mean steps?)" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ({"lora": {"rnak": 4}}, "lora.rnak: unknown key (did you mean rank?)"),
        ({"rewards": [{"name": "length", "wieght": 2}]}, "rewards.0.wieght: unknown key (did you mean weight?)"),
        ({"zzzzzz": 1}, "zzzzzz: unknown key"),
    ],
)
def test_unknown_keys_are_matched_against_their_own_section(key, expected):
    with pytest.raises(ConfigError) as raised:
        validate_config({**MINIMAL, **key})
    assert expected in str(raised.value).splitlines()


def test_cli_unknown_preset_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["train", "--preset", "nope", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown preset" in result.output


def test_cli_lists_presets():
    result = CliRunner().invoke(app, ["presets"])
    assert result.exit_code == 0
    for name in PRESETS:
        assert name in result.output


def test_jobconfig_is_the_schema():
    assert JobConfig.model_json_schema()["properties"]["beta0"]["default"] == 0.04


def test_config_reference_doc_is_current():
    from pathlib import Path

    from adrpo_engine.config_docs import config_reference_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "config.md"
    assert doc.read_text() == config_reference_markdown(), (
        "regenerate: python -m adrpo_engine.config_docs > docs/config.md"
    )


def test_a_job_without_prompts_is_refused_at_validation():
    with pytest.raises(ConfigError) as error:
        validate_config(
            {"kind": "flow", "model": {"name_or_path": "builtin:digits-flow"}, "rewards": [{"name": "digits:even"}]}
        )
    assert str(error.value).startswith("prompts: no prompts given")
