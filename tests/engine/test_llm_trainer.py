"""LLMTrainer on a miniature Qwen2 built from config (random weights, a locally trained tokenizer)."""

from typing import Any

import pytest
import torch

from adrpo_engine import metrics as M
from adrpo_engine.checkpoints import list_checkpoints
from adrpo_engine.config import ConfigError, validate_config
from adrpo_engine.config_io import apply_overrides
from adrpo_engine.kinds import get_kind
from adrpo_engine.models import causal_lm as C
from adrpo_engine.models import lm_sampling as S
from adrpo_engine.progress import RecordingSink
from adrpo_engine.runner import compare, train
from adrpo_engine.trainers.llm import LLMTrainer

TIMING = {M.STEP_TIME, M.SAMPLES_PER_S, M.TOKENS_PER_S}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from adrpo_engine.models.tiny_lm import build_model, corpus_lines, train_tokenizer

    folder = tmp_path_factory.mktemp("mini-qwen2")
    tokenizer = train_tokenizer(corpus_lines(300))
    torch.manual_seed(0)
    model = build_model(len(tokenizer), tokenizer.eos_token_id)
    small = type(model.config)(
        **{
            **model.config.to_dict(),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
        }
    )
    model = type(model)(small)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def job(model_dir, **overrides):
    base = {
        "kind": "llm",
        "model": {"name_or_path": str(model_dir)},
        # random weights: the completion length varies a lot, so a length reward gives real advantages
        "rewards": [{"name": "length", "options": {"target": 12, "unit": "chars"}}],
        "prompts": {"dataset": "builtin:tiny-lm-task"},
        "steps": 2,
        "group_size": 4,
        "prompts_per_step": 2,
        "lr": 1e-2,
        "beta0": 0.04,
        "checkpoint_every": 3,
        "sample_every": 100,
        "lora": {"rank": 4, "alpha": 8},
        "llm": {"max_new_tokens": 8, "eval_samples": 1},
    }
    return validate_config(apply_overrides(base, overrides))


def adapter_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.model.state_dict().items() if "lora_" in k}


def run_trainer(cfg, run_dir, resume=False):
    sink = RecordingSink()
    trainer = LLMTrainer(cfg, run_dir, sink)
    trainer.run(resume=resume)
    return trainer, sink


def test_one_step_is_finite_and_logs_every_metric(model_dir, tmp_path):
    trainer, sink = run_trainer(job(model_dir, steps=1), tmp_path / "run")
    step = sink.steps[1]
    assert set(get_kind("llm").metric_names) <= set(step)
    assert all(torch.isfinite(torch.tensor(v)) for v in step.values())
    assert step[M.BETA_MIN] >= 0 and step[M.BETA_MAX] <= 0.08 + 1e-6
    assert {s.role for s in sink.samples} == {"reference", "policy"}
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "metrics.jsonl").is_file()


def test_resume_replays_the_uninterrupted_run(model_dir, tmp_path):
    straight, straight_sink = run_trainer(job(model_dir, steps=6), tmp_path / "straight")
    run_trainer(job(model_dir, steps=3), tmp_path / "split")
    resumed, resumed_sink = run_trainer(job(model_dir, steps=6), tmp_path / "split", resume=True)
    assert any("resumed" in line for line in resumed_sink.logs)
    a, b = adapter_state(straight), adapter_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    for step in (4, 5, 6):
        for name, value in straight_sink.steps[step].items():
            if name not in TIMING:
                assert resumed_sink.steps[step][name] == pytest.approx(value, abs=1e-6), (step, name)
    assert [s for s, _ in list_checkpoints(tmp_path / "split")] == [3, 6]


def test_final_adapter_loads_with_peft(model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer, _ = run_trainer(job(model_dir, steps=2), tmp_path / "run")
    final = list_checkpoints(tmp_path / "run")[-1][1]
    assert (final / "adapter_model.safetensors").is_file() and (final / "adapter_config.json").is_file()
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), final).eval()
    ids = torch.tensor([[5, 9, 17, 3]])
    trainer.policy.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, trainer.policy.model(input_ids=ids).logits)
        with loaded.disable_adapter():
            base = loaded(input_ids=ids).logits
    assert not torch.allclose(base, loaded(input_ids=ids).logits)  # the adapter learned something


def test_adrpo_with_zero_clip_equals_fixed_beta(model_dir, tmp_path):
    adrpo, adrpo_sink = run_trainer(job(model_dir, a_min=0.0, a_max=0.0), tmp_path / "a")
    fixed, fixed_sink = run_trainer(job(model_dir, algorithm="fixed"), tmp_path / "f")
    for key, value in adapter_state(fixed).items():
        torch.testing.assert_close(adapter_state(adrpo)[key], value, atol=0, rtol=0)
    for name in (M.LOSS, M.POLICY_LOSS, M.KL, M.BETA_MEAN):
        assert adrpo_sink.steps[2][name] == fixed_sink.steps[2][name]


def test_skipping_reference_for_zero_beta_rows_changes_nothing(model_dir, tmp_path):
    # full_kl_every=100: step 1 measures the whole batch's KL, step 2 skips the beta_i = 0 rows
    skipped, skipped_sink = run_trainer(job(model_dir, **{"llm.full_kl_every": 100}), tmp_path / "skip")
    full, full_sink = run_trainer(job(model_dir, **{"llm.skip_zero_beta_reference": False}), tmp_path / "full")
    assert skipped_sink.steps[1]["kl/ref_frac"] == 1.0 and M.KL in skipped_sink.steps[1]
    assert skipped_sink.steps[2]["kl/ref_frac"] < 1.0  # some rows really were skipped
    assert M.KL not in skipped_sink.steps[2]  # not a subset's KL under the batch's name
    assert skipped_sink.steps[2][M.KL_BETA_NONZERO] == pytest.approx(full_sink.steps[2][M.KL_BETA_NONZERO], abs=1e-7)
    assert full_sink.steps[1]["kl/ref_frac"] == 1.0
    for step in (1, 2):
        assert skipped_sink.steps[step][M.LOSS] == pytest.approx(full_sink.steps[step][M.LOSS], abs=1e-7)
    for key, value in adapter_state(full).items():
        torch.testing.assert_close(adapter_state(skipped)[key], value, atol=1e-7, rtol=0)


def test_grad_accum_and_num_iterations_run(model_dir, tmp_path):
    whole, whole_sink = run_trainer(job(model_dir, steps=1), tmp_path / "w")
    split, split_sink = run_trainer(job(model_dir, steps=1, grad_accum=3), tmp_path / "s")
    assert split_sink.steps[1][M.LOSS] == pytest.approx(whole_sink.steps[1][M.LOSS], abs=1e-6)
    for key, value in adapter_state(whole).items():
        torch.testing.assert_close(adapter_state(split)[key], value, atol=1e-6, rtol=1e-5)
    _, sink = run_trainer(job(model_dir, steps=1, **{"llm.num_iterations": 2, "llm.loss_agg": "dapo"}), tmp_path / "i")
    assert torch.isfinite(torch.tensor(sink.steps[1][M.LOSS]))
    _, sink = run_trainer(job(model_dir, steps=1, **{"llm.decode": "generate", "llm.top_p": 0.9}), tmp_path / "g")
    assert torch.isfinite(torch.tensor(sink.steps[1][M.LOSS]))


def test_kl_is_measured_over_the_whole_batch_even_at_beta0_zero(model_dir, tmp_path):
    # fixed beta0 = 0: no row needs a reference for the loss, but the logged kl must still be the drift
    _, sink = run_trainer(job(model_dir, steps=2, algorithm="fixed", beta0=0.0), tmp_path / "b0")
    assert sink.steps[2]["kl/ref_frac"] == 1.0 and sink.steps[2][M.KL] > 0.0
    assert M.KL_BETA_NONZERO not in sink.steps[2]  # no row has beta_i != 0
    _, sink = run_trainer(
        job(model_dir, steps=2, algorithm="fixed", beta0=0.0, **{"llm.full_kl_every": 5}), tmp_path / "b0-sparse"
    )
    assert sink.steps[2]["kl/ref_frac"] == 0.0 and M.KL not in sink.steps[2]  # nothing measured: nothing logged


def test_folded_sampling_matches_the_adapter_and_restores_weights(model_dir):
    cfg = job(model_dir)
    model, tokenizer = C.load_causal_lm(cfg.model, torch.device("cpu"), torch.float32)
    peft_model = C.add_lora(model, cfg.lora)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a non-trivial adapter
    before = {k: v.clone() for k, v in peft_model.state_dict().items()}
    ids, mask = C.encode_prompts(tokenizer, ["list fruits:", "tools:"], torch.device("cpu"))
    options = dict(
        max_new_tokens=10, temperature=1.0, top_p=0.9, eos_ids=[tokenizer.eos_token_id], pad_id=tokenizer.pad_token_id
    )
    torch.manual_seed(1)
    folded = S.sample_completions(peft_model, ids, mask, fold_lora=True, **options)
    torch.manual_seed(1)
    plain = S.sample_completions(peft_model, ids, mask, fold_lora=False, **options)
    assert torch.equal(folded.completion_ids, plain.completion_ids)
    for key, value in peft_model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # log-probs of the sampled tokens equal a plain full forward's
    logp, entropy = C.completion_logprobs(peft_model, plain, with_entropy=True)
    full = peft_model(
        input_ids=plain.input_ids,
        attention_mask=plain.attention_mask,
        position_ids=(plain.attention_mask.cumsum(1) - 1).clamp(min=0),
    ).logits
    width = plain.completion_ids.shape[1]
    want = torch.log_softmax(full[:, -width - 1 : -1], dim=-1).gather(-1, plain.completion_ids[..., None])[..., 0]
    torch.testing.assert_close(logp, want, atol=1e-5, rtol=1e-5)
    assert entropy.shape == logp.shape and (entropy >= 0).all()


def test_decode_loop_agrees_with_generate(model_dir):
    cfg = job(model_dir)
    model, tokenizer = C.load_causal_lm(cfg.model, torch.device("cpu"), torch.float32)
    ids, mask = C.encode_prompts(tokenizer, ["list fruits:", "name some body parts:"], torch.device("cpu"))
    pad, never = tokenizer.pad_token_id, [-1]
    # near-zero temperature: both pick the most likely token at every step
    loop = S.decode_loop(model, ids, mask, 12, 1e-4, 1.0, never, pad, repeat=2)
    greedy = model.generate(
        input_ids=ids.repeat_interleave(2, 0),
        attention_mask=mask.repeat_interleave(2, 0),
        do_sample=False,
        max_new_tokens=12,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad,
    )
    assert torch.equal(loop, greedy[:, ids.shape[1] :])


def test_completion_mask_stops_after_eos():
    tokens = torch.tensor([[4, 2, 9, 9], [4, 5, 6, 7], [2, 9, 9, 9]])
    assert S.completion_mask_from(tokens, [2]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    logits = torch.tensor([[3.0, 2.0, 1.0, -5.0]])
    kept = S.filter_top_p(logits, 0.8)
    assert torch.isfinite(kept).tolist() == [[True, True, False, False]]


def test_chat_template_without_one_fails_before_writing(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="llm.chat_template"):
        train(job(model_dir, **{"llm.chat_template": True}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_model_leaves_nothing_written(tmp_path):
    cfg = validate_config(
        {
            "kind": "llm",
            "model": {"name_or_path": str(tmp_path / "no-such-model")},
            "rewards": [{"name": "length"}],
            "prompts": {"texts": ["hi"]},
        }
    )
    with pytest.raises(ConfigError, match="model.name_or_path"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_comparison_uses_the_same_seed_for_both_roles(model_dir, tmp_path):
    cfg = job(model_dir, steps=2)
    run_trainer(cfg, tmp_path / "run")
    untrained = compare(cfg, None, "list fruits:", 7, 3, tmp_path / "c0")
    texts = {role: [s.text for s in untrained if s.role == role] for role in ("reference", "policy")}
    assert texts["reference"] == texts["policy"] and len(texts["policy"]) == 3
    final = list_checkpoints(tmp_path / "run")[-1][1]
    samples = compare(cfg, final, "list fruits:", 7, 3, tmp_path / "c1")
    assert [s.text for s in samples if s.role == "reference"] == texts["reference"]
    assert all(s.reward is not None and s.step == 2 for s in samples)
    assert (tmp_path / "c1" / "comparison.json").is_file()


def test_gpt2_lora_defaults_and_folding(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from adrpo_engine.config import LoraConfig
    from adrpo_engine.models.tiny_lm import corpus_lines, train_tokenizer

    tokenizer = train_tokenizer(corpus_lines(100))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)
    ).eval()
    peft_model = C.add_lora(model, LoraConfig(rank=4, alpha=8))
    assert peft_model.peft_config["default"].fan_in_fan_out
    assert set(peft_model.peft_config["default"].target_modules) == {"c_attn", "c_proj"}
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
        ids = torch.tensor([[3, 7, 11, 5]])
        active = peft_model(input_ids=ids).logits
        with S.lora_folded(peft_model):
            folded = peft_model(input_ids=ids).logits
        with peft_model.disable_adapter():
            base = peft_model(input_ids=ids).logits
    torch.testing.assert_close(folded, active, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base, active, atol=1e-3)
    C.lora_train_mode(peft_model)  # GPT-2 has dropout of its own: it stays off, LoRA's is on
    modes = {name: module.training for name, module in peft_model.named_modules()}
    assert not modes["base_model.model.transformer.h.0.attn.resid_dropout"]
    assert modes["base_model.model.transformer.h.0.attn.c_attn.lora_dropout.default"]


def test_folding_a_lora_on_a_tied_lm_head_leaves_the_input_embeddings_alone():
    # LoRA on an LM head tied to the input embeddings (the audio-tones preset's adapter): folding must not
    # write the head's update into the shared weight, or every sampled token is embedded with it.
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2, n_positions=16)).eval()
    assert model.lm_head.weight is model.transformer.wte.weight
    peft_model = get_peft_model(model, PeftLoraConfig(r=4, lora_alpha=8, target_modules=["lm_head"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
        ids = torch.tensor([[3, 7, 11, 5, 9]])
        active = peft_model(input_ids=ids).logits
        embeddings = model.transformer.wte.weight.clone()
        with S.lora_folded(peft_model):
            assert torch.equal(model.transformer.wte.weight, embeddings)
            folded = peft_model(input_ids=ids).logits
    torch.testing.assert_close(folded, active, atol=1e-5, rtol=1e-5)
    head: Any = model.lm_head.base_layer  # the head inside peft's LoRA wrapper
    assert head.weight is model.transformer.wte.weight  # tied again, the same tensor
    assert torch.equal(model.transformer.wte.weight, embeddings)


@pytest.mark.parametrize(
    "overrides",
    [
        {"llm.loss_agg": "dr_grpo"},
        {"llm.loss_agg": "bnpo", "grad_accum": 2},
        {"llm.loss_agg": "dapo"},
        {"llm.importance_sampling_level": "sequence", "llm.num_iterations": 2},
        {"llm.kl_bias_correction": False, "llm.top_entropy_quantile": 0.2},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_every_loss_variant_trains_and_logs_trl_metrics(model_dir, tmp_path, overrides):
    _, sink = run_trainer(job(model_dir, steps=1, **overrides), tmp_path / "run")
    step = sink.steps[1]
    assert set(get_kind("llm").metric_names) <= set(step)
    assert {
        M.FRAC_REWARD_ZERO_STD,
        M.CLIP_LOW_MEAN,
        M.CLIP_HIGH_MEAN,
        M.CLIP_REGION_MEAN,
        M.CLIP_LOW_MIN,
        M.CLIP_HIGH_MAX,
    } <= set(step)
    assert all(torch.isfinite(torch.tensor(v)) for v in step.values())
    assert 0.0 <= step[M.CLIP_REGION_MEAN] <= 1.0
    assert step[M.GRAD_NORM] > 0  # the variant's loss really moved the adapter


def test_masked_truncated_completions_leave_the_loss(model_dir, tmp_path):
    # one new token: every completion is cut at max_new_tokens (the first token is not EOS here)
    settings = {"llm.max_new_tokens": 1, "llm.mask_truncated_completions": True, "beta0": 0.0, "algorithm": "fixed"}
    _, sink = run_trainer(job(model_dir, steps=1, **settings), tmp_path / "masked")
    assert sink.steps[1]["completion/clipped_frac"] == 1.0
    assert sink.steps[1][M.LOSS] == 0.0 and sink.steps[1][M.GRAD_NORM] == 0.0
    _, sink = run_trainer(
        job(model_dir, steps=1, **{**settings, "llm.mask_truncated_completions": False}), tmp_path / "kept"
    )
    assert sink.steps[1][M.GRAD_NORM] > 0


def test_dapo_defaults_to_clip_higher():
    cfg = validate_config(
        {
            "kind": "llm",
            "model": {"name_or_path": "x"},
            "rewards": [{"name": "length"}],
            "prompts": {"texts": ["a"]},
            "llm": {"loss_agg": "dapo"},
        }
    )
    assert cfg.llm.clip_eps_high == 0.28 and cfg.llm.eps_low == 0.2
    assert cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"loss_agg": "grpo"})}).llm.clip_eps_high == 0.2
    assert cfg.llm.model_copy(update={"eps_high": 0.5}).clip_eps_high == 0.5


def test_several_passes_run_without_dropout_so_the_first_is_on_policy(model_dir, tmp_path):
    def two_forwards(num_iterations):
        cfg = job(model_dir, **{"lora.dropout": 0.5, "llm.num_iterations": num_iterations})
        trainer = LLMTrainer(cfg, tmp_path / f"run{num_iterations}")
        trainer.setup()
        torch.manual_seed(0)
        for p in trainer.policy.model.parameters():  # a non-zero adapter, so its dropout matters
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.5)
        rollouts = trainer.policy.sample(["list fruits:"], 2)
        old = trainer.frozen_logprobs(rollouts, torch.ones(2, dtype=torch.bool), adapter=True)
        trainer.train_mode()
        with torch.no_grad():
            new = trainer.policy.logprobs(rollouts, adapter=True)[0]
        mask = rollouts.completion_mask.bool()
        return old[mask], new[mask]

    old, new = two_forwards(2)
    torch.testing.assert_close(old, new, atol=0, rtol=0)  # rho = 1 exactly on the first pass
    old, new = two_forwards(1)  # one pass: dropout on in the update (old log-probs are its own, detached)
    assert not torch.equal(old, new)
    assert any(
        "dropout" in note for note in job(model_dir, **{"lora.dropout": 0.1, "llm.num_iterations": 2}).advisories()
    )


def test_long_prompts_are_truncated_from_the_left(model_dir):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    text = "list fruits: apple, pear, melon, kiwi, lime, grape, peach, mango"
    whole = tokenizer(text)["input_ids"]
    ids, _ = C.encode_prompts(tokenizer, [text, "colors:"], torch.device("cpu"), max_length=5)
    assert ids.shape[1] == 5 and ids[0].tolist() == whole[-5:]  # the end (what the completion follows) is kept
    assert tokenizer.truncation_side == "right"  # the tokenizer's own setting is left as it was
