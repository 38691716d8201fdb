"""Every GPU preset against its model family's conventions, as far as they can be checked offline."""

import re

import pytest

from adrpo_engine.models.causal_lm import DEFAULT_TARGETS
from adrpo_engine.presets import PRESETS, preset_config

GPU_PRESETS = [name for name, preset in PRESETS.items() if not preset.demo]

# hub-id pattern -> (transformers model_type, context length in tokens) of the LLM families presets use
LLM_FAMILIES = {
    r"^Qwen/Qwen2(\.5)?-": ("qwen2", 32768),
    r"^Qwen/Qwen3-": ("qwen3", 40960),
    r"^meta-llama/(Meta-)?Llama-3": ("llama", 8192),
    r"^mistralai/Mistral-": ("mistral", 32768),
}
INSTRUCT = re.compile(r"(instruct|chat|-it\b|-it-)", re.IGNORECASE)
QWEN2_AUDIO = re.compile(r"^Qwen/Qwen2-Audio-7B(-Instruct)?$")
SD3 = re.compile(r"^stabilityai/stable-diffusion-3(\.5)?-(medium|large)")


def family(name):
    for pattern, values in LLM_FAMILIES.items():
        if re.search(pattern, name):
            return values
    pytest.fail(f"GPU preset model {name!r} is of no family this test knows: add its conventions here")


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_preset_follows_its_family(name):
    cfg = preset_config(name)
    model = cfg.model.name_or_path
    assert not PRESETS[name].demo and not model.startswith("builtin:")
    if cfg.kind == "llm":
        model_type, context = family(model)
        # an instruct/chat model is prompted through its chat template; a base model is not
        assert cfg.llm.chat_template == bool(INSTRUCT.search(model)), model
        assert model_type in DEFAULT_TARGETS or cfg.lora.target_modules, "LoRA targets for the architecture"
        prompt = cfg.llm.max_prompt_tokens
        assert prompt is not None and prompt + cfg.llm.max_new_tokens <= context  # fits the context window
        assert 0.0 < cfg.llm.temperature <= 1.2 and cfg.lr <= 1e-4  # RL with LoRA: small steps
    elif cfg.kind == "audio":
        assert QWEN2_AUDIO.search(model), f"audio GPU preset {model!r}: only Qwen2-Audio is known here"
        # its Whisper encoder sees one 30-s window (3000 mel frames, 1500 positions): longer clips are cut
        assert cfg.audio.max_seconds <= 30.0
        assert cfg.lora.target_modules is None  # the default: the language model's attention, encoder frozen
        assert 0.0 < cfg.llm.temperature <= 1.2 and cfg.lr <= 1e-4 and cfg.model.dtype == "bfloat16"
        assert cfg.llm.decode == "loop" and cfg.llm.max_new_tokens <= 1024
    else:
        assert SD3.search(model), f"flow GPU preset {model!r}: only the SD3 family is known here"
        # SD3: 8x VAE downsampling, then 2x2 patches: the side must be a multiple of 16
        assert cfg.flow.resolution is not None and cfg.flow.resolution % 16 == 0
        assert cfg.flow.sample_steps >= 10  # its scheduler is trained for ~28 steps; fewer degrades samples
    assert cfg.prompts.texts or cfg.prompts.file or cfg.prompts.dataset
