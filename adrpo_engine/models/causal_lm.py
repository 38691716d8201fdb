"""Causal LMs for GRPO/ADRPO: loading, LoRA, prompt encoding and per-token log-probabilities.

- Any ``AutoModelForCausalLM`` by hub id or local folder, or a built-in model (``kinds``; ``tiny_lm``).
  A local folder with a ``tokenizer.json`` is read with ``PreTrainedTokenizerFast`` (``AutoTokenizer``
  may pick a slow tokenizer for a locally trained vocabulary, which splits text differently).
- LoRA through peft, with a default target list per architecture (:data:`DEFAULT_TARGETS`); GPT-2's
  ``Conv1D`` layers need ``fan_in_fan_out=True``. ``lora.target_modules: [all-linear]`` is peft's
  every-linear-layer shortcut.
- The reference policy is the same network with the adapter disabled (``disable_adapter()``): no
  second copy of the weights.
- Rollouts (sampling completions) live in :mod:`adrpo_engine.models.lm_sampling`.
- :func:`completion_logprobs`: log-probabilities of the completion tokens (logits divided by the
  sampling temperature, as in TRL) and optionally their entropy, computing logits only for the
  completion positions (``logits_to_keep``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, overload

import torch
from torch import Tensor

from ..config import ConfigError, LoraConfig, ModelConfig
from ..hub import first_line, is_hub_id, require_loadable
from ..kinds import resolve_model_path
from .lm_sampling import Rollouts

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"

_ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
# Default LoRA targets by ``config.model_type`` (attention projections; add the MLP's gate/up/down via
# lora.target_modules). Architectures not listed fall back to peft's own per-architecture defaults.
DEFAULT_TARGETS: dict[str, list[str]] = {
    "llama": _ATTENTION,
    "qwen2": _ATTENTION,
    "qwen3": _ATTENTION,
    "mistral": _ATTENTION,
    "gemma": _ATTENTION,
    "gemma2": _ATTENTION,
    "phi3": ["qkv_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
}
FAN_IN_FAN_OUT = {"gpt2"}  # Conv1D layers store weights transposed


# ----------------------------------------------------------------------------------------------
# Loading


def load_tokenizer(path: str, revision: str | None = None):
    """The tokenizer of a model folder or hub id, padding on the left (prompts end where sampling starts)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    local = Path(path).expanduser()
    if (local / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(local))
    else:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_causal_lm(model_cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
    """``(model, tokenizer)``; an unloadable id or folder is a ConfigError naming ``model.name_or_path``."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = resolve_model_path(model_cfg.name_or_path, kind="llm")
    if is_hub_id(path):
        require_loadable(path, model_cfg.revision)
    try:
        tokenizer = load_tokenizer(path, model_cfg.revision)
        model = AutoModelForCausalLM.from_pretrained(path, revision=model_cfg.revision, dtype=dtype)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"model.name_or_path: cannot load a causal LM from {model_cfg.name_or_path!r}: {first_line(error)}"
        ) from None
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"model.name_or_path: the tokenizer of {model_cfg.name_or_path!r} has no EOS token")
    model = model.to(device)  # pyright: ignore[reportArgumentType] (transformers types .to's self oddly)
    model.eval().requires_grad_(False)
    return model, tokenizer


def lora_targets(model, lora: LoraConfig) -> list[str] | str | None:
    if lora.target_modules:
        return "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    return DEFAULT_TARGETS.get(model.config.model_type)  # None: peft's default for the architecture


def add_lora(model, lora: LoraConfig):
    """Wrap ``model`` in a PeftModel with a fresh LoRA adapter; only the adapter is trainable."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,  # pyright: ignore[reportArgumentType] (peft takes a float)
        lora_dropout=lora.dropout,
        target_modules=lora_targets(model, lora),
        fan_in_fan_out=model.config.model_type in FAN_IN_FAN_OUT,
        task_type="CAUSAL_LM",
        bias="none",
    )
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`: a FutureWarning that
            # is not ours to fix and was the first thing `adrpo train` printed.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, peft_config)
    except ValueError as error:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"lora.target_modules: {error}") from None


def enable_gradient_checkpointing(model) -> None:
    """transformers' activation checkpointing of every decoder layer (non-reentrant; with PEFT the input
    embeddings are made to require grad so the frozen layers pass gradients to the adapter)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(f"model.gradient_checkpointing: {type(model).__name__} does not support it")
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def checkpointed_layers_train_flag(peft_model, on: bool) -> None:
    """transformers recomputes a checkpointed layer only in training mode; the trainers keep the base model
    in eval mode (no base dropout), so set the flag of the checkpointed layers alone (their dropouts stay off)."""
    for module in peft_model.modules():
        if getattr(module, "gradient_checkpointing", False) is True and isinstance(module, torch.nn.Module):
            module.training = on


def lora_train_mode(peft_model) -> None:
    """Training mode for the LoRA dropout only. The base model's own dropout stays off: it would make the
    policy's log-probs disagree with the sampling and reference passes, which run without it."""
    peft_model.eval()
    for name, module in peft_model.named_modules():
        if name.endswith("lora_dropout"):
            module.train()


def save_adapter(peft_model, directory: Path) -> None:
    """PEFT format: ``adapter_model.safetensors`` + ``adapter_config.json`` (``PeftModel.from_pretrained``)."""
    peft_model.save_pretrained(str(directory))


def load_adapter_weights(peft_model, directory: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = Path(directory) / PEFT_WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"adapter: {str(directory)!r} holds no {PEFT_WEIGHTS}")
    result = set_peft_model_state_dict(peft_model, load_file(str(weights)))
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ConfigError(f"adapter: {str(directory)!r} does not fit this model (unexpected keys {unexpected[:3]})")


# ----------------------------------------------------------------------------------------------
# Prompts


def encode_prompts(
    tokenizer, prompts: Sequence[str], device: torch.device, chat_template: bool = False, max_length: int | None = None
) -> tuple[Tensor, Tensor]:
    """Left-padded ``(ids, mask)``; with ``chat_template`` each prompt becomes one user message; prompts longer
    than ``max_length`` tokens keep their last ``max_length`` tokens."""
    if chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("llm.chat_template: the model's tokenizer has no chat template")
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            for text in prompts
        ]
    # Long prompts lose their start, not their end (TRL truncates from the left too): the end holds the
    # question and the chat template's assistant header the completion must follow.
    side, tokenizer.truncation_side = tokenizer.truncation_side, "left"
    try:
        encoded = tokenizer(
            list(prompts),
            return_tensors="pt",
            padding=True,
            add_special_tokens=not chat_template,
            truncation=max_length is not None,
            max_length=max_length,
        )
    finally:
        tokenizer.truncation_side = side
    return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)


def decode_completions(tokenizer, completion_ids: Tensor, completion_mask: Tensor) -> list[str]:
    """Completion texts (special tokens dropped)."""
    rows = [ids[mask.bool()].tolist() for ids, mask in zip(completion_ids.cpu(), completion_mask.cpu())]
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the tokenizer's EOS and the generation config's (chat models
    often stop on an end-of-turn token)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return sorted(i for i in ids if i is not None)


# ----------------------------------------------------------------------------------------------
# Log-probabilities


def token_logprobs_from_logits(logits: Tensor, tokens: Tensor) -> Tensor:
    """``log softmax(logits)[token]`` per position without materialising the full log-softmax twice."""
    logits = logits.float()
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


@overload
def completion_logprobs(
    model, rollouts: Rollouts, temperature: float = 1.0, *, with_entropy: Literal[True]
) -> tuple[Tensor, Tensor]: ...
@overload
def completion_logprobs(
    model, rollouts: Rollouts, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[Tensor, Tensor | None]: ...
def completion_logprobs(
    model, rollouts: Rollouts, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Per-token log-probs ``(N, T)`` of the completion tokens under ``model`` (as it is: adapter on or
    off is the caller's context), and their entropy ``(N, T)`` (detached) if asked."""
    mask = rollouts.attention_mask
    width = rollouts.completion_ids.shape[1]
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    if rollouts.prompt_embeds is None:
        inputs = {"input_ids": rollouts.input_ids}
    else:  # an audio-LM: the prompts' merged embeddings, then the completion tokens' embeddings
        completion = model.get_input_embeddings()(rollouts.completion_ids)
        inputs = {"inputs_embeds": torch.cat([rollouts.prompt_embeds, completion], dim=1)}
    logits = model(
        **inputs, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=width + 1
    ).logits[:, :-1]
    logits = logits / temperature
    logp = token_logprobs_from_logits(logits, rollouts.completion_ids)
    entropy = None
    if with_entropy:
        from ..objectives import token_entropy

        with torch.no_grad():
            entropy = token_entropy(logits.detach())
    return logp, entropy
