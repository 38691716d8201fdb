"""The Launch form <-> job config mapping (pure functions, no server)."""

import pytest

from adrpo_engine.config import ConfigError, validate_config
from adrpo_engine.presets import PRESETS
from app.ui import forms


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_the_form(name):
    values = forms.form_from_config(PRESETS[name].config, name)
    preview = forms.preview(values)
    assert preview.error is None
    assert preview.config == validate_config(PRESETS[name].config).model_dump(mode="json")


def digits_form(**changes):
    values = forms.form_from_config(PRESETS["digits-even"].config, "digits-even")
    values.update(changes)
    return values


def test_form_edits_reach_the_config_and_hidden_preset_settings_survive():
    values = digits_form(beta0=0.2, a_min=-0.1, a_max="", steps=7, lr=0.01, group_size=4, lora_rank=4,
                         lora_targets="net.0, net.2", seed=3, algorithm="fixed", name="mine")
    config = forms.preview(values).config
    assert (config["beta0"], config["a_min"], config["a_max"]) == (0.2, -0.1, None)
    assert (config["steps"], config["lr"], config["group_size"], config["seed"]) == (7, 0.01, 4, 3)
    assert config["lora"] == {**config["lora"], "rank": 4, "target_modules": ["net.0", "net.2"]}
    assert config["algorithm"] == "fixed" and config["name"] == "mine"
    # Not on the form: kept from the preset.
    assert config["sample_every"] == 20 and config["flow"]["sample_steps"] == 16
    assert config["lora"]["alpha"] == 16


def test_out_of_range_value_is_reported_in_words_naming_the_field():
    preview = forms.preview(digits_form(beta0=-1))
    assert preview.config is None
    assert preview.error.startswith("beta0:") and "greater than or equal to 0" in preview.error


def test_inconsistent_clipping_is_reported():
    preview = forms.preview(digits_form(a_min=0.5, a_max=0.1))
    assert "a_min (0.5) must be <= a_max (0.1)" in preview.error


def test_non_numbers_and_fractions_name_their_field():
    assert forms.preview(digits_form(lr="fast")).error == "lr: expected a number (got 'fast')"
    assert forms.preview(digits_form(steps=2.5)).error == "steps: expected a whole number (got 2.5)"


def test_reward_rows_with_models_weights_and_options_and_extra_overrides():
    from app.ui import reward_specs as R

    rows = [R.new_row("digits:class"), R.new_row("clip_score", weight=0.5)]
    rows = R.set_option(rows, rows[0]["id"], "k", 4)
    assert rows[1]["model"] == "openai/clip-vit-large-patch14"  # the reward's default model
    rows = R.replace_row(rows, rows[1]["id"], model="builtin:tiny-clip")
    values = digits_form(rewards=rows, extra="sample_every=5\nflow.sample_steps=8")
    config = forms.preview(values).config
    assert config["rewards"] == [
        {"name": "digits:class", "model": None, "weight": 1.0, "options": {"k": 4}},
        {"name": "clip_score", "model": "builtin:tiny-clip", "weight": 0.5, "options": {}},
    ]
    assert config["sample_every"] == 5 and config["flow"]["sample_steps"] == 8
    # the rows show the config again (ids are the form's own, never in the config)
    shown = forms.form_from_config(config)["rewards"]
    assert [(r["name"], r["model"], r["weight"], r["options"]) for r in shown] == [
        ("digits:class", "", 1.0, {"k": 4}), ("clip_score", "builtin:tiny-clip", 0.5, {})]
    assert forms.preview(digits_form(extra="bta0=1")).error == "bta0: unknown key"


def test_reward_rows_are_checked_like_a_submission_naming_the_row():
    from app.ui import reward_specs as R

    wrong_kind = [R.new_row("digits:even"), R.new_row("length")]
    assert forms.preview(digits_form(rewards=wrong_kind)).error.startswith("rewards[1].name: 'length' scores texts")
    bad_option = R.set_option([R.new_row("digits:class")], "x", "k", 4)
    bad_option = [{**bad_option[0], "options": {"k": 11}}]
    assert forms.preview(digits_form(rewards=bad_option)).error.startswith("rewards[0].options.k:")
    zero = [{**R.new_row("digits:even"), "weight": 0}]
    assert forms.preview(digits_form(rewards=zero)).error.startswith("rewards: every weight is 0")
    assert forms.preview(digits_form(rewards=[])).error.startswith("rewards:")


def test_reward_choices_are_grouped_by_what_they_need():
    from app.ui import reward_specs as R

    labels = [label for label, _ in R.reward_choices("llm")]
    assert labels.index("Rule (no model) · length") < labels.index("Reward model (sequence classification) · reward_model")
    assert all("clip_score" not in label for label in labels)
    assert R.models_for("reward_model")[0] == "builtin:tiny-lm-rm"
    assert "openai/clip-vit-large-patch14" in R.models_for("clip_score")
    assert [field.name for field in R.option_fields("length")] == ["target", "unit"]
    assert R.reward_choices("flow", ["my_mod:score"])[-1] == ("Your function (module:function) · my_mod:score", "my_mod:score")


def test_prompt_sources(tmp_path):
    dataset = forms.preview(digits_form(prompt_source="dataset", dataset="openai/gsm8k", dataset_column="question"))
    assert dataset.config["prompts"]["dataset"] == "openai/gsm8k"
    assert dataset.config["prompts"]["column"] == "question" and dataset.config["prompts"]["texts"] == []
    listed = forms.preview(digits_form(prompt_source="file", prompt_file="builtin:digits"))
    assert listed.config["prompts"]["file"] == "builtin:digits"
    assert "prompts.file" in forms.preview(digits_form(prompt_source="file", prompt_file="")).error
    typed = forms.preview(digits_form(prompt_texts="a red cube\n\n a blue ball "))
    assert typed.config["prompts"]["texts"] == ["a red cube", "a blue ball"]


def test_uploaded_prompt_files_are_read_inline(tmp_path):
    text = tmp_path / "p.txt"
    text.write_text("one\n\ntwo\n")
    assert forms.read_prompt_file(text) == ["one", "two"]
    rows = tmp_path / "p.jsonl"
    rows.write_text('{"question": "2+2?"}\n{"question": "3+3?"}\n')
    assert forms.read_prompt_file(rows, "question") == ["2+2?", "3+3?"]
    with pytest.raises(ConfigError, match="line 1 of p.jsonl has no 'prompt' field"):
        forms.read_prompt_file(rows)


def test_custom_start_of_each_kind_is_valid_and_choices_match_the_kind():
    for kind in ("flow", "llm"):
        values = forms.form_from_config(forms.base_config(forms.CUSTOM, kind))
        assert forms.preview(values).config["kind"] == kind
    assert "builtin:digits-flow" in forms.model_choices("flow")
    assert "builtin:tiny-lm" in forms.model_choices("llm") and "builtin:digits-flow" not in forms.model_choices("llm")
    from app.ui.reward_specs import reward_choices

    assert "digits:even" in [name for _, name in reward_choices("flow")]
    assert forms.preset_choices()[0][1] in {p.name for p in PRESETS.values() if p.demo}


def test_orw_for_an_llm_is_refused_with_the_schema_message():
    values = forms.form_from_config(forms.base_config(forms.CUSTOM, "llm"))
    values["algorithm"] = "orw"
    assert "algorithm 'orw' (ORW-CFM-W2) is for kind 'flow' only" in forms.preview(values).error


def test_empty_clipping_bounds_mean_the_default_not_zero():
    values = forms.form_from_config(PRESETS["digits-even"].config, "digits-even")
    assert values["a_min"] == "" and values["a_max"] == ""
    config = forms.preview({**values, "a_max": "  "}).config
    assert config["a_min"] is None and config["a_max"] is None  # ADRPO's -beta0/+beta0, not fixed beta
    assert forms.preview({**values, "a_min": "-0.05"}).config["a_min"] == -0.05


def test_launch_tab_handlers_switch_kind_and_fill_from_a_preset():
    from app.ui import launch

    digits_rows = forms.form_from_config(PRESETS["digits-even"].config)["rewards"]
    base, model, rows = launch.switch_kind("llm", forms.CUSTOM, "builtin:digits-flow", digits_rows)
    assert base["kind"] == "llm" and model["value"] == "builtin:tiny-lm"
    assert "builtin:digits-flow" not in model["choices"]
    assert [row["name"] for row in rows] == ["builtin:tiny-lm-task"]  # an image reward gives way
    updates = dict(zip(forms.FIELDS[1:], launch.fill_from_preset("digits-even", "llm")[1:]))
    assert updates["kind"] == "flow" and updates["steps"] == 120 and updates["model"]["value"] == "builtin:digits-flow"
    assert "a_min" in launch.error_markdown("a_min: bad\nbeta0: worse") and "- beta0: worse" in launch.error_markdown(
        "a_min: bad\nbeta0: worse")
