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
    values = digits_form(
        beta0=0.2,
        a_min=-0.1,
        a_max="",
        steps=7,
        lr=0.01,
        group_size=4,
        lora_rank=4,
        lora_targets="net.0, net.2",
        seed=3,
        algorithm="fixed",
        name="mine",
    )
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


def test_reward_rows_and_extra_overrides():
    from app.ui import reward_specs as R

    rows = [{**R.new_row("digits:class"), "options": {"k": 4}}, {**R.new_row("digits:even"), "weight": 0.5}]
    values = digits_form(rewards=rows, extra="sample_every=5\nflow.sample_steps=8")
    config = forms.preview(values).config
    assert config["rewards"] == [
        {"name": "digits:class", "model": None, "weight": 1.0, "options": {"k": 4}},
        {"name": "digits:even", "model": None, "weight": 0.5, "options": {}},
    ]
    assert config["sample_every"] == 5 and config["flow"]["sample_steps"] == 8
    assert forms.preview(digits_form(extra="bta0=1")).error == "bta0: unknown key (did you mean beta0?)"
    # an option left empty, or at its default, is the option's default: not written into the config
    assert R.specs_from_rows([{**R.new_row("digits:class"), "options": {"k": None}}]) == [
        {"name": "digits:class", "weight": 1.0}
    ]
    at_defaults = {"batch_size": 16.0, "chat": False, "max_length": 512}
    assert R.specs_from_rows([{**R.new_row("reward_model"), "options": at_defaults}])[0]["options"] == {
        "max_length": 512
    }


def test_reward_rows_are_checked_as_a_submission_and_named_in_words():
    from app.ui import reward_specs as R

    wrong_model = digits_form(
        rewards=[R.new_row("digits:even"), {**R.new_row("clip_score"), "model": "builtin:tiny-lm-rm"}]
    )
    error = forms.preview(wrong_model).error
    assert error.startswith("rewards.1.model: 'builtin:tiny-lm-rm' is a reward model")
    (found,) = forms.field_errors(error)
    assert found.field == "rewards" and found.message.startswith("Reward 2 · model: 'builtin:tiny-lm-rm' is a")
    out_of_range = forms.field_errors(
        forms.preview(digits_form(rewards=[{**R.new_row("digits:class"), "options": {"k": 12}}])).error
    )
    assert [(e.field, e.message) for e in out_of_range] == [("rewards", "Reward 1 · k must be at most 9")]
    zero = forms.preview(digits_form(rewards=[{**R.new_row("digits:even"), "weight": 0}])).error
    assert zero.startswith("rewards: every weight is 0")
    llm = forms.form_from_config(forms.base_config(forms.CUSTOM, "llm"))
    text_and_image = [R.new_row("length"), R.new_row("digits:even")]
    assert forms.preview({**llm, "rewards": text_and_image}).error.startswith(
        "rewards.1.name: 'digits:even' scores images"
    )


def test_the_live_preview_reads_no_local_model_folder(tmp_path):
    import json

    from app.ui import reward_specs as R

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["SecretForCausalLM"], "model_type": "x"}))
    llm = forms.form_from_config(forms.base_config(forms.CUSTOM, "llm"))
    rows = [{**R.new_row("reward_model"), "model": str(tmp_path)}]
    assert forms.preview({**llm, "rewards": rows}).error is None  # the submission checks it, after the policy


def test_reward_row_choices_follow_the_schema():
    from app.ui import reward_specs as R

    flow = dict((name, label) for label, name in R.reward_choices("flow"))
    assert flow["digits:even"].startswith("Built-in scorer") and flow["clip_score"].startswith("CLIP-family model")
    assert R.REMOTE_PLACEHOLDER in flow and "length" not in flow
    llm = dict((name, label) for label, name in R.reward_choices("llm", ["my.module:score"]))
    assert llm["reward_model"].startswith("Reward model") and llm["length"].startswith("Rule")
    assert llm["my.module:score"].startswith("Your function")
    assert R.models_for("reward_model")[0] == "builtin:tiny-lm-rm" and R.models_for("length") == []
    assert R.new_row("clip_score")["model"] == "openai/clip-vit-large-patch14"  # the reward's default
    assert R.new_row("reward_model")["model"] == "builtin:tiny-lm-rm"  # no default: the first suggestion
    assert [f.name for f in R.option_fields("length")] == ["target", "unit"]
    row = {**R.new_row("length"), "options": {"target": 9}, "weight": 2.0}
    assert R.rename_row([row], row["id"], "length") == [row]  # the same reward again: nothing redraws
    (renamed,) = R.rename_row([row], row["id"], "regex_format")
    assert renamed["id"] != row["id"] and renamed["options"] == {} and renamed["weight"] == 2.0
    assert "not for this job" in R.row_summary("digits:even", "llm")
    # a config round-trips through rows, the old `options: {model: ...}` spelling included
    rows = R.rows_from_specs([{"name": "clip_score", "options": {"model": "builtin:tiny-clip", "scale": 2.0}}])
    assert R.specs_from_rows(rows) == [
        {"name": "clip_score", "model": "builtin:tiny-clip", "weight": 1.0, "options": {"scale": 2.0}}
    ]


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
    import gradio as gr

    from app.ui.events import launch as events
    from app.ui.launch import build_launch_tab

    with gr.Blocks():
        tab = build_launch_tab()
    f = tab.fields
    from app.ui import reward_specs as R

    updates = events.switch_kind(tab, "llm", "builtin:digits-flow", [R.new_row("digits:even")])
    assert updates[tab.base]["kind"] == "llm" and updates[f["model"]]["value"] == "builtin:tiny-lm"
    assert "builtin:digits-flow" not in updates[f["model"]]["choices"]
    # an image reward does not fit an LLM job: the rows give way to the kind's default
    assert [row["name"] for row in updates[f["rewards"]]] == ["builtin:tiny-lm-task"]
    kept = [R.new_row("length"), R.new_row("reward_model")]
    again = events.switch_kind(tab, "llm", "builtin:tiny-lm", kept)[f["rewards"]]
    assert [{**row, "id": None} for row in again] == [{**row, "id": None} for row in kept]  # kept, redrawn
    assert {row["id"] for row in again}.isdisjoint(row["id"] for row in kept)
    filled = events.fill_from_preset(tab, "digits-even", "llm")
    assert filled[f["kind"]] == "flow" and filled[f["steps"]] == 120
    assert filled[f["model"]]["value"] == "builtin:digits-flow"
    # An invalid form: the field is marked, its message in words, the preview says it is invalid.
    shown = events.preview_updates(tab, None, digits_form(steps=0))
    assert shown[f["steps"]]["elem_classes"] == [events.ERROR_CLASS]
    assert shown[f["steps"]]["info"] == "⚠ Steps must be at least 1"
    assert shown[f["beta0"]]["elem_classes"] == []
    assert shown[tab.yaml_preview].startswith("# The form is not a valid job config yet")
    assert "`steps: Input should be greater than or equal to 1 (got 0)`" in shown[tab.errors]
    assert f["rewards"] not in shown and shown[tab.rewards.errors] == ""  # a state gets no info/highlight
    rows = events.preview_updates(tab, None, digits_form(rewards=[]))
    assert "Rewards: give at least 1" in rows[tab.rewards.errors]


def test_validation_messages_belong_to_their_field_in_words():
    errors = forms.field_errors(
        "steps: Input should be greater than or equal to 1 (got 0)\n"
        "rewards.0.name: unknown reward 'nope'\n"
        "a_min (0.5) must be <= a_max (0.1)\n"
        "flow.sample_stepz: unknown key (did you mean sample_steps?)"
    )
    assert [(e.field, e.message) for e in errors] == [
        ("steps", "Steps must be at least 1"),
        ("rewards", "Reward 1 · reward: unknown reward 'nope'"),
        ("a_min", "a_min (0.5) must be <= a_max (0.1)"),
        ("extra", "Advanced settings: not a setting of the job config (did you mean sample_steps?)"),
    ]
    assert errors[0].detail == "steps: Input should be greater than or equal to 1 (got 0)"  # the exact key kept
    assert forms.field_for_path("lora.target_modules") == "lora_targets"
    assert forms.field_for_path("prompts.texts") == "prompt_texts"


def test_an_invalid_form_previews_no_config_and_names_the_field():
    result = forms.preview(digits_form(steps=0))
    assert result.config is None and result.yaml_text == ""
    assert [e.field for e in forms.field_errors(result.error)] == ["steps"]


def test_the_prompt_field_explains_the_built_in_models_syntax():
    assert "'digit K'" in forms.prompt_help("builtin:digits-flow")
    assert forms.prompt_help("Qwen/Qwen2.5-0.5B-Instruct") == forms.PROMPT_INFO


def test_dry_run_results_as_the_studio_shows_them():
    from app.ui import reward_rows, reward_specs

    view = {
        "status": "succeeded",
        "prompt": "list fruits:",
        "rewards": [
            {"label": "reward/length", "name": "length", "model": None, "weight": 1.0},
            {"label": "reward/reward_model", "name": "reward_model", "model": "builtin:tiny-lm-rm", "weight": 0.5},
        ],
        "samples": [
            {
                "index": 0,
                "scores": {"reward/length": 0.5, "reward/reward_model": 0.2},
                "total": 0.6,
                "text": " apple, pear.",
                "image_path": None,
            }
        ],
    }
    columns, table = reward_specs.dry_run_table(view)
    assert columns == ["#", "sample", "reward/length (x1)", "reward/reward_model (x0.5)", "weighted total"]
    assert table == [[0, " apple, pear.", 0.5, 0.2, 0.6]]
    status, shown, images = reward_rows.dry_run_outputs(view)
    assert "'list fruits:'" in status and shown["visible"] and not images["visible"]
    failed = reward_rows.dry_run_outputs({"status": "failed", "error": "rewards.1.model: cannot load it"})
    assert failed[0] == "**The dry run failed:** Reward 2 · model: cannot load it"
    waiting = reward_rows.dry_run_outputs({"status": "queued"})
    assert waiting[0].startswith("**No result yet:** the dry run is still queued")


def test_audio_clips_become_rows_that_travel_with_the_job(tmp_path):
    from app.ui.events.launch import submit_form

    clips = []
    for name in ("one.wav", "two.wav"):
        (tmp_path / name).write_bytes(b"RIFF" + name.encode())
        clips.append(str(tmp_path / name))
    values = forms.form_from_config(PRESETS["audio-tones"].config, "audio-tones")
    values.update(
        prompt_source="clips",
        prompt_texts="How many beeps do you hear? (A) 1 (B) 2",
        clip_files=clips,
        clip_answers="1\n2",
    )
    config = forms.config_from_form(values)
    assert config["prompts"]["rows"] == [
        {"prompt": "How many beeps do you hear? (A) 1 (B) 2", "audio": "one.wav", "answer": "1"},
        {"prompt": "How many beeps do you hear? (A) 1 (B) 2", "audio": "two.wav", "answer": "2"},
    ]
    assert "dataset" not in config["prompts"]
    assert forms.clip_uploads(values) == {"one.wav": b"RIFFone.wav", "two.wav": b"RIFFtwo.wav"}

    class Service:
        def submit(self, config, uploads=None):
            self.config, self.uploads = config, uploads

            class Job:
                id, name, status = "abc", config["name"], "queued"

            return Job

    service = Service()
    job_id, message, errors = submit_form(service, None, values)
    assert job_id == "abc" and errors == [] and set(service.uploads) == {"one.wav", "two.wav"}

    with pytest.raises(ConfigError, match="one answer per clip"):
        forms.config_from_form({**values, "clip_answers": "1"})
    with pytest.raises(ConfigError, match="upload one or more audio clips"):
        forms.config_from_form({**values, "clip_files": None})
    with pytest.raises(ConfigError, match="one question for every clip"):
        forms.config_from_form({**values, "prompt_texts": "a\nb\nc"})


def test_trackers_chosen_on_the_form_reach_the_config_and_round_trip():
    values = forms.form_from_config(forms.base_config("digits-even"), "digits-even")
    assert values["report_to"] == []
    values["report_to"] = ["tensorboard", "mlflow"]
    config = forms.preview(values, forms.base_config("digits-even")).config
    assert config is not None and config["report_to"] == ["tensorboard", "mlflow"]
    assert forms.form_from_config(config)["report_to"] == ["tensorboard", "mlflow"]
    assert [name for _, name in forms.tracker_choices()] == ["tensorboard", "mlflow", "wandb", "trackio"]


def test_a_tracker_the_server_lacks_is_labelled_and_refused_naming_the_field(monkeypatch):
    import adrpo_engine.trackers as trackers

    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    assert ("wandb (not installed)", "wandb") in forms.tracker_choices()
    values = forms.form_from_config(forms.base_config("digits-even"), "digits-even")
    values["report_to"] = ["wandb"]
    result = forms.preview(values, forms.base_config("digits-even"))
    assert result.config is None
    assert "report_to" in result.error and "'wandb'" in result.error and "not installed" in result.error
