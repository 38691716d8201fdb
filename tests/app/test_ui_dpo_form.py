"""The Launch form offers Diffusion-DPO for flow jobs, with its own options."""

from __future__ import annotations

from adrpo_engine.presets import PRESETS
from app.ui import forms


def test_dpo_is_offered_with_its_options_in_the_flow_section():
    assert "dpo" in forms.ALGORITHM_LABELS
    values = forms.form_from_config(PRESETS["digits-even"].config, "digits-even")
    assert values["dpo_beta"] == 1000.0 and values["dpo_pairs"] == "best_worst" and values["dpo_refresh_every"] == 0
    values.update(algorithm="dpo", dpo_beta=250, dpo_pairs="all", dpo_refresh_every=20)
    config = forms.preview(values).config
    assert config["algorithm"] == "dpo"
    assert config["flow"]["dpo_beta"] == 250 and config["flow"]["dpo_pairs"] == "all"
    assert config["flow"]["dpo_refresh_every"] == 20
    assert config["flow"]["sample_steps"] == 16  # the preset's hidden flow settings survive


def test_dpo_options_are_validated_by_the_schema():
    values = forms.form_from_config(PRESETS["digits-even"].config, "digits-even")
    assert "flow.dpo_beta" in forms.preview({**values, "algorithm": "dpo", "dpo_beta": -1}).error
    assert "flow.dpo_refresh_every" in forms.preview({**values, "algorithm": "dpo", "dpo_refresh_every": 1.5}).error
    llm = forms.form_from_config(forms.base_config(forms.CUSTOM, "llm"))
    assert "is for kind 'flow' only" in forms.preview({**llm, "algorithm": "dpo"}).error


def test_other_algorithms_leave_the_dpo_keys_at_their_defaults():
    values = forms.form_from_config(PRESETS["digits-even"].config, "digits-even")
    config = forms.preview({**values, "dpo_beta": 5}).config
    assert config["algorithm"] == "adrpo" and config["flow"]["dpo_beta"] == 1000.0
