"""The audio kind on builtin:tiny-audio-lm (reduced recipe: the real architecture, pre-trained for 4 steps)."""

import pytest
import torch

from adrpo_engine import metrics as M
from adrpo_engine.checkpoints import list_checkpoints
from adrpo_engine.config import ConfigError, validate_config
from adrpo_engine.config_io import apply_overrides
from adrpo_engine.evaluation import evaluate
from adrpo_engine.kinds import get_kind
from adrpo_engine.models import audio_lm as A
from adrpo_engine.models import causal_lm as C
from adrpo_engine.progress import RecordingSink
from adrpo_engine.runner import compare
from adrpo_engine.trainers.audio_lm import AudioLMTrainer, AudioPolicy
from adrpo_engine.worlds.audio import prompts as P

TIMING = {M.STEP_TIME, M.SAMPLES_PER_S, M.TOKENS_PER_S}


def job(**overrides):
    base = {
        "kind": "audio",
        "model": {"name_or_path": "builtin:tiny-audio-lm"},
        "rewards": [{"name": "mc_answer"}, {"name": "mc_format", "weight": 0.5}],
        "prompts": {"dataset": "builtin:audio-tones", "limit": 16},
        "steps": 2,
        "group_size": 4,
        "prompts_per_step": 2,
        "lr": 1e-2,
        "checkpoint_every": 3,
        "sample_every": 100,
        "lora": {"rank": 4, "alpha": 8},
        "llm": {"max_new_tokens": 8, "eval_samples": 1},
    }
    return validate_config(apply_overrides(base, overrides))


def run_trainer(cfg, run_dir, resume=False):
    sink = RecordingSink()
    trainer = AudioLMTrainer(cfg, run_dir, sink)
    trainer.run(resume=resume)
    return trainer, sink


def perturbed_policy():
    """A policy whose LoRA update is not zero (a fresh adapter's B is zero: on and off would agree trivially)."""
    cfg = job()
    policy = AudioPolicy(cfg, torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in policy.model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return cfg, policy


def lora_names(policy):
    return [name for name, _ in policy.model.named_parameters() if "lora_" in name]


def test_lora_sits_in_the_language_model_and_the_encoder_is_frozen():
    _, policy = perturbed_policy()
    names = lora_names(policy)
    assert names and all("language_model" in name for name in names)
    assert not any("audio_tower" in name or "multi_modal_projector" in name for name in names)
    trainable = [name for name, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable == names


def test_prompt_embeddings_are_the_models_own_merge_and_need_no_adapter():
    cfg, policy = perturbed_policy()
    rows = P.audio_tones()[:2]
    from adrpo_engine.data import PromptRow

    prompt_rows = [PromptRow(r["prompt"], {k: v for k, v in r.items() if k != "prompt"}) for r in rows]
    ids, mask, on = policy.encode(prompt_rows)
    with policy.model.disable_adapter():
        _, _, off = policy.encode(prompt_rows)
    torch.testing.assert_close(on, off)
    audio_id = policy.model.get_base_model().config.audio_token_id
    assert int((ids == audio_id).sum(dim=1)[0]) == 50  # 2 s of audio: 200 mel frames -> 50 placeholders
    # The text positions hold the token embeddings; the placeholders hold the projected audio features.
    text = policy.lm.get_input_embeddings()(ids)
    keep = (ids != audio_id) & mask.bool()
    torch.testing.assert_close(on[keep], text[keep])
    assert not torch.allclose(on[ids == audio_id], text[ids == audio_id])


def test_completion_logprobs_on_embeddings_match_the_full_models_forward():
    cfg, policy = perturbed_policy()
    from adrpo_engine.data import PromptRow

    rows = [PromptRow(r["prompt"], {k: v for k, v in r.items() if k != "prompt"}) for r in P.audio_tones()[:2]]
    torch.manual_seed(0)
    rollouts = policy.sample_rows(rows, 2)
    logp, _ = policy.logprobs(rollouts, adapter=True)
    inputs = A.encode_inputs(policy.processor, [r.prompt for r in rows], [policy.clip(r) for r in rows], policy.device)
    features = inputs["input_features"].repeat_interleave(2, dim=0)
    feature_mask = inputs["feature_attention_mask"].repeat_interleave(2, dim=0)
    mask = rollouts.attention_mask
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = policy.model(
            input_ids=rollouts.input_ids,
            attention_mask=mask,
            position_ids=positions,
            input_features=features,
            feature_attention_mask=feature_mask,
        ).logits
    width = rollouts.completion_ids.shape[1]
    full = C.token_logprobs_from_logits(logits[:, -width - 1 : -1], rollouts.completion_ids)
    valid = rollouts.completion_mask.bool()
    torch.testing.assert_close(logp[valid], full[valid], atol=1e-4, rtol=1e-4)


def test_a_prompt_groups_completions_do_not_depend_on_the_batch_it_is_sampled_in():
    # Data parallel: each rank samples its own prompt groups with the groups' own draws (base.group_generators),
    # so the completions of groups 2-3 must be the same sampled alone (rank 1 of 2) as in the whole batch.
    from adrpo_engine.data import PromptRow
    from adrpo_engine.trainers.base import group_generators

    cfg, policy = perturbed_policy()
    rows = [PromptRow(r["prompt"], {k: v for k, v in r.items() if k != "prompt"}) for r in P.audio_tones()[:4]]
    group, width = 3, cfg.llm.max_new_tokens

    def draws(groups: range) -> torch.Tensor:
        return torch.cat([torch.rand((group, width), generator=g) for g in group_generators(cfg.seed, 1, groups)])

    whole = policy.texts(policy.sample_rows(rows, group, uniforms=draws(range(0, 4))))
    torch.manual_seed(123)  # the global generator plays no part
    second_half = policy.texts(policy.sample_rows(rows[2:], group, uniforms=draws(range(2, 4))))
    assert second_half == whole[2 * group :]
    assert len(set(whole)) > 1  # the draws differ per row: not one completion repeated


def test_the_trainer_samples_each_step_with_its_prompt_groups_draws(tmp_path, monkeypatch):
    trainer = AudioLMTrainer(job(prompts_per_step=2), tmp_path / "run", RecordingSink())
    trainer.setup()
    seen = []
    sample_rows = trainer.policy.sample_rows

    def recording(rows, repeat, adapter=True, uniforms=None):
        seen.append(uniforms)
        return sample_rows(rows, repeat, adapter, uniforms)

    monkeypatch.setattr(trainer.policy, "sample_rows", recording)
    trainer.train_step(1)
    assert seen[0] is not None
    torch.testing.assert_close(seen[0], trainer.sampling_draws(1, slice(0, 2)))


def test_a_few_steps_log_every_metric_and_audio_samples(tmp_path):
    trainer, sink = run_trainer(job(steps=2, sample_every=2), tmp_path / "run")
    for step in (1, 2):
        assert set(get_kind("audio").metric_names) <= set(sink.steps[step])
        assert all(torch.isfinite(torch.tensor(v)) for v in sink.steps[step].values())
    assert "reward/mc_answer" in sink.steps[1] and "reward/mc_format" in sink.steps[1]
    samples = sink.samples
    assert {s.kind for s in samples} == {"audio"} and {s.role for s in samples} == {"reference", "policy"}
    for sample in samples:
        assert (tmp_path / "run" / sample.audio_path).is_file()
        assert sample.prompt.startswith(("How many", "Is the", "Which"))


def test_resume_replays_the_uninterrupted_run(tmp_path):
    straight, straight_sink = run_trainer(job(steps=4), tmp_path / "straight")
    run_trainer(job(steps=2, checkpoint_every=2), tmp_path / "split")
    resumed, resumed_sink = run_trainer(job(steps=4, checkpoint_every=2), tmp_path / "split", resume=True)
    assert any("resumed" in line for line in resumed_sink.logs)
    a = {k: v for k, v in straight.policy.model.state_dict().items() if "lora_" in k}
    b = {k: v for k, v in resumed.policy.model.state_dict().items() if "lora_" in k}
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    for step in (3, 4):
        for name, value in straight_sink.steps[step].items():
            if name not in TIMING:
                assert resumed_sink.steps[step][name] == pytest.approx(value, abs=1e-6), (step, name)
    assert [s for s, _ in list_checkpoints(tmp_path / "split")] == [2, 4]


def test_compare_plays_one_clip_for_both_roles_and_eval_scores_held_out_clips(tmp_path):
    cfg = job(steps=1, checkpoint_every=1)
    trainer, _ = run_trainer(cfg, tmp_path / "run")
    checkpoint = list_checkpoints(tmp_path / "run")[-1][1]
    question = P.audio_tones()[0]["prompt"]
    samples = compare(cfg, checkpoint, question, seed=3, num_samples=2, out_dir=tmp_path / "cmp")
    assert [s.role for s in samples] == ["reference"] * 2 + ["policy"] * 2
    assert {s.audio_path for s in samples} == {str((tmp_path / "cmp" / "clip.wav").resolve())}
    assert all(s.kind == "audio" and s.reward is not None for s in samples)
    with pytest.raises(ConfigError, match="is not a question of this job's audio prompts"):
        compare(cfg, checkpoint, "What is this?", seed=3, num_samples=1, out_dir=tmp_path / "cmp2")
    held = job(**{"eval.dataset": "builtin:audio-tones-heldout", "eval.limit": 4, "eval.samples_per_prompt": 2})
    reference, tuned = evaluate(held, [(0, None), (1, checkpoint)])
    assert reference.held_out and reference.prompts == 4
    assert 0.0 <= reference.metrics[M.REWARD_MEAN] <= 1.5 and reference.metrics[M.KL] == 0.0
    assert tuned.metrics[M.KL] >= 0.0 and M.ENTROPY in tuned.metrics


def test_rows_without_a_clip_and_other_decoders_are_refused(tmp_path):
    bad = job(**{"prompts.dataset": None, "prompts.texts": ["How many beeps? (A) 1 (B) 2"]})
    with pytest.raises(ConfigError, match="has no 'audio' column"):
        run_trainer(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ConfigError, match="loop decoder"):
        run_trainer(job(**{"llm.decode": "generate"}), tmp_path / "gen")


def test_inline_rows_with_clip_paths(tmp_path):
    from adrpo_engine.audio_io import write_wav

    row = P.audio_tones()[1]
    write_wav(tmp_path / "clip.wav", row["audio"]["array"], row["audio"]["sampling_rate"])
    cfg = job(
        **{
            "prompts.dataset": None,
            "prompts.rows": [{"prompt": row["prompt"], "audio": str(tmp_path / "clip.wav"), "answer": row["answer"]}],
            "prompts_per_step": 1,
            "steps": 1,
        }
    )
    _, sink = run_trainer(cfg, tmp_path / "run")
    assert M.REWARD_MEAN in sink.steps[1]


def test_the_model_cards_snippet_loads_the_adapter_onto_the_builtin_base(tmp_path, monkeypatch):
    import shutil

    from worker.model_card import load_snippet

    run_trainer(job(steps=1, checkpoint_every=1), tmp_path / "run")
    shutil.copytree(list_checkpoints(tmp_path / "run")[-1][1], tmp_path / "adapter")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(load_snippet({"kind": "audio", "model": {"name_or_path": "builtin:tiny-audio-lm"}}), scope)  # noqa: S102
    names = [name for name, _ in scope["model"].named_parameters() if "lora_" in name]
    assert names and all("language_model" in name for name in names)


def test_jsonl_rows_with_relative_clip_paths_and_a_datasets_audio_column(tmp_path):
    import json

    import datasets

    from adrpo_engine.audio_io import write_wav
    from adrpo_engine.data import load_prompts

    rows = P.audio_tones()[:2]
    folder = tmp_path / "clips"
    for k, row in enumerate(rows):
        write_wav(folder / f"{k}.wav", row["audio"]["array"], row["audio"]["sampling_rate"])
    jsonl = folder / "rows.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps({"prompt": r["prompt"], "audio": f"{k}.wav", "answer": r["answer"]}) for k, r in enumerate(rows)
        )
    )
    cfg = job(**{"prompts.dataset": None, "prompts.file": str(jsonl), "steps": 1})
    _, sink = run_trainer(cfg, tmp_path / "jsonl")
    assert M.REWARD_MEAN in sink.steps[1]

    table = datasets.Dataset.from_dict(
        {
            "question": [r["prompt"] for r in rows],
            "clip": [str(folder / f"{k}.wav") for k in range(2)],
            "answer": [r["answer"] for r in rows],
        }
    ).cast_column("clip", datasets.Audio(sampling_rate=8_000))
    table.save_to_disk(str(tmp_path / "ds"))
    cfg = job(
        **{
            "prompts.dataset": str(tmp_path / "ds"),
            "prompts.column": "question",
            "prompts.limit": None,
            "audio.column": "clip",
            "steps": 1,
        }
    )
    loaded = load_prompts(cfg.prompts)
    assert set(loaded[0].columns["clip"]) >= {"bytes", "path"}  # read undecoded, decoded by audio_io
    policy = AudioPolicy(cfg, torch.device("cpu"), torch.float32)
    clip = policy.clip(loaded[0])
    assert clip.shape == rows[0]["audio"]["array"].shape  # resampled to the feature extractor's 16 kHz
    _, sink = run_trainer(cfg, tmp_path / "dataset")
    assert M.REWARD_MEAN in sink.steps[1]
