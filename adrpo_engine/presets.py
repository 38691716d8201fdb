"""Named job configs. Demo presets run on a laptop CPU with models the project builds itself;
GPU presets name hub ids and are meant for a CUDA machine. Every preset validates as a JobConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ConfigError, JobConfig, validate_config
from .config_io import apply_overrides


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    demo: bool  # True: runs on CPU with built-in models, no download
    config: dict[str, Any] = field(repr=False)


PRESETS: dict[str, Preset] = {}
SHAPES_COMPOSE_STEPS = 400  # ~5 minutes of training on 2 cores (0.72-0.8 s per step)


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"preset: unknown preset {name!r} (choose from {', '.join(sorted(PRESETS))})") from None


def preset_config(name: str, overrides: dict[str, Any] | None = None) -> JobConfig:
    """The preset's config with dotted-key overrides applied, validated."""
    return validate_config(apply_overrides(get_preset(name).config, overrides or {}))


TINY_LM: dict = {
    "name": "tiny-lm",
    "kind": "llm",
    "model": {"name_or_path": "builtin:tiny-lm"},
    "rewards": [{"name": "builtin:tiny-lm-task"}],
    "prompts": {"dataset": "builtin:tiny-lm-task"},
    # reward/mean rises from ~0.27 to ~0.6 in 150 steps (1-3 min on 2 busy cores, plus ~40 s to build
    # the model once); lr 2e-3 sometimes and 3e-3 always drift off (KL > 1). docs/llm.md has the numbers.
    "steps": 150,
    "group_size": 8,
    "prompts_per_step": 8,
    "lr": 1e-3,
    "warmup_steps": 10,
    "checkpoint_every": 50,
    "sample_every": 50,
    "lora": {"rank": 16, "alpha": 32},
    "llm": {"max_new_tokens": 48, "temperature": 1.0},
}

register(
    Preset(
        name="tiny-lm",
        summary="Built-in tiny causal LM (CPU, minutes): ADRPO-GRPO on a rule reward it starts low on.",
        demo=True,
        config=TINY_LM,
    )
)

register(
    Preset(
        name="tiny-lm-deceptive",
        summary="Built-in tiny LM on a reward with a deceptive local optimum (3-item lists pay half, 8+ all).",
        demo=True,
        # The tiny-lm preset's optimiser and sampling (docs/results/deceptive_lm_design.md fixes them equal).
        config={**TINY_LM, "name": "tiny-lm-deceptive", "rewards": [{"name": "builtin:tiny-lm-deceptive"}]},
    )
)

register(
    Preset(
        name="digits-even",
        summary="Built-in 8x8 digits flow model (CPU, minutes): ADRPO-FM towards even digits without collapse.",
        demo=True,
        config={
            "name": "digits-even",
            "kind": "flow",
            "model": {"name_or_path": "builtin:digits-flow"},
            "rewards": [{"name": "digits:even"}],
            "prompts": {"texts": ["any digit"]},
            # ~2-5 s of training on 2 cores (plus ~30 s to build the model once); P(even) rises from ~0.46
            # to ~0.86 while the samples keep all five even digits (docs/flow.md has the numbers).
            "steps": 120,
            "group_size": 16,
            "prompts_per_step": 4,
            "lr": 1e-3,
            "beta0": 0.1,
            "checkpoint_every": 40,
            "sample_every": 20,
            "lora": {"rank": 8, "alpha": 16},
            "flow": {"sample_steps": 16, "guidance_scale": 1.0},
        },
    )
)

register(
    Preset(
        name="shapes-compose",
        summary="Built-in miniature SD3 on captioned shapes (CPU): ADRPO-FM on compositional prompts, GenEval-style verifier.",
        demo=True,
        config={
            "name": "shapes-compose",
            "kind": "flow",
            "model": {"name_or_path": "builtin:shapes-sd3"},
            "rewards": [{"name": "shapes:geneval"}],
            # Training on the seen combinations; the logged samples (and bench/shapes_compose_bench.py's
            # held-out score) are on held-out colour/shape combinations the model never saw.
            "prompts": {
                "file": "builtin:shapes-compose",
                "eval": ["a red circle to the left of a blue square", "three blue squares"],
            },
            "steps": SHAPES_COMPOSE_STEPS,
            "group_size": 8,
            "prompts_per_step": 4,
            "lr": 1e-3,
            "beta0": 0.05,
            # A clip of +-beta0 makes the flow loss beta0 times a beta0-free one, so beta0 stops setting the
            # strength of the W2 anchor and its minimiser stays within half the good-poor velocity gap of the
            # reference (docs/flow.md "Why the preset did not learn"); +-1 of the group-normalised advantage
            # leaves beta0 as the knob.
            "a_min": -1.0,
            "a_max": 1.0,
            "checkpoint_every": 50,
            "sample_every": 25,
            "lora": {"rank": 8, "alpha": 16},
            "flow": {"sample_steps": 10, "guidance_scale": 1.0, "t_sampling": "logit_normal"},
        },
    )
)

AUDIO_TONES_STEPS = 200

register(
    Preset(
        name="audio-tones",
        summary="Built-in miniature Qwen2-Audio on generated tones (CPU, minutes): ADRPO-GRPO on multiple-choice audio questions.",
        demo=True,
        config={
            "name": "audio-tones",
            "kind": "audio",
            "model": {"name_or_path": "builtin:tiny-audio-lm"},
            "rewards": [{"name": "mc_answer"}],
            # Training on 512 generated clips; evals (eval jobs, bench/audio_tones_adrpo_vs_fixed.py) on 128
            # held-out clips of the same four questions (docs/audio.md has the numbers).
            "prompts": {"dataset": "builtin:audio-tones"},
            "eval": {"dataset": "builtin:audio-tones-heldout", "samples_per_prompt": 4},
            "steps": AUDIO_TONES_STEPS,
            "group_size": 8,
            "prompts_per_step": 8,
            "lr": 1e-3,
            "warmup_steps": 5,
            "checkpoint_every": 50,
            "sample_every": 25,
            # LoRA on the LM head as well as the attention: the head (tied to the input embeddings) and the final
            # norm are frozen otherwise, and they cap how far the answer logits can move apart (supervised
            # training on the true answers reached only 0.79 held-out accuracy with attention-only LoRA).
            "lora": {"rank": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "lm_head"]},
            "llm": {"max_new_tokens": 12, "temperature": 1.0},
        },
    )
)

register(
    Preset(
        name="qwen2-audio-mmau",
        summary="GPU: Qwen2-Audio-7B-Instruct, LoRA, ADRPO-GRPO on MMAU-style multiple-choice audio QA (downloads).",
        demo=False,
        config={
            "name": "qwen2-audio-mmau",
            "kind": "audio",
            "model": {"name_or_path": "Qwen/Qwen2-Audio-7B-Instruct", "dtype": "bfloat16"},
            # R1-AQA's recipe shape: the option in an <answer> tag, accuracy reward plus a small format reward.
            "rewards": [
                {"name": "mc_answer", "options": {"column": "answer", "choices_column": "choices"}},
                {"name": "mc_format", "weight": 0.1},
            ],
            # lmms-lab/mmau: MMAU with an Audio column, question, choices (a list in a string) and answer (the
            # option's text). Its 9k `test` split and 1k `test_mini` are disjoint: train on your own AVQA-style
            # data (R1-AQA's recipe) for benchmark numbers, and evaluate on test_mini.
            "prompts": {"dataset": "lmms-lab/mmau", "split": "test", "column": "question"},
            "eval": {"dataset": "lmms-lab/mmau", "split": "test_mini", "samples_per_prompt": 4, "limit": 1000},
            "audio": {
                "column": "audio",
                "max_seconds": 30.0,
                "choices_column": "choices",
                "instruction": "Output the final answer in <answer> </answer>.",
            },
            "steps": 1000,
            "group_size": 8,
            "prompts_per_step": 4,
            "lr": 1e-5,
            "beta0": 0.04,
            "checkpoint_every": 100,
            "sample_every": 50,
            "grad_accum": 4,
            "lora": {"rank": 32, "alpha": 64},
            "llm": {"max_new_tokens": 256, "temperature": 1.0},
        },
    )
)

register(
    Preset(
        name="sd3-medium-clip",
        summary="GPU: Stable Diffusion 3 medium, LoRA, ADRPO-FM with a CLIP-score reward (downloads weights).",
        demo=False,
        config={
            "name": "sd3-medium-clip",
            "kind": "flow",
            "model": {"name_or_path": "stabilityai/stable-diffusion-3-medium-diffusers"},
            "rewards": [{"name": "clip_score", "model": "openai/clip-vit-large-patch14"}],
            "prompts": {"file": "builtin:t2i-prompts"},
            "steps": 1000,
            "group_size": 8,
            "prompts_per_step": 4,
            "lr": 1e-4,
            "beta0": 0.04,
            "checkpoint_every": 100,
            "sample_every": 50,
            # 32 rollouts of 512 px per step; 4 micro-batches keep the policy + reference passes within one GPU.
            "grad_accum": 4,
            "lora": {"rank": 32, "alpha": 32},
            # CFG-free training rollouts (half the rollout cost, samples from the conditional velocity the loss
            # trains); samples, comparisons and evals use guidance 7.
            "flow": {
                "sample_steps": 28,
                "guidance_scale": 7.0,
                "train_guidance_scale": 1.0,
                "resolution": 512,
                "t_sampling": "logit_normal",
            },
        },
    )
)

register(
    Preset(
        name="qwen-0.5b-math",
        summary="GPU: Qwen2.5-0.5B-Instruct, LoRA, ADRPO-GRPO on GSM8K with an exact-answer reward (downloads).",
        demo=False,
        config={
            "name": "qwen-0.5b-math",
            "kind": "llm",
            "model": {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"},
            "rewards": [
                {"name": "answer_match", "options": {"column": "answer", "numeric": True}},
                {"name": "regex_format", "weight": 0.2, "options": {"pattern": r"####\s*-?[\d,\.]+"}},
            ],
            "prompts": {"dataset": "openai/gsm8k", "split": "train", "column": "question"},
            "steps": 500,
            "group_size": 8,
            "prompts_per_step": 8,
            "lr": 1e-5,
            "beta0": 0.04,
            "checkpoint_every": 50,
            "sample_every": 25,
            "lora": {"rank": 32, "alpha": 64},
            # An instruct model answers in its own turn: the question goes in as a user message of its chat
            # template (else it continues the raw text); long questions lose their start, never the header.
            "llm": {"max_new_tokens": 256, "temperature": 1.0, "chat_template": True, "max_prompt_tokens": 512},
        },
    )
)
