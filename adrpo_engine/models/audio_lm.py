"""Audio-language models for ADRPO-GRPO: loading, LoRA on the language model, prompt encoding once per group.

- :func:`load_audio_lm`: ``Qwen2AudioForConditionalGeneration`` (or any ``AutoModelForImageTextToText`` /
  ``AutoModel`` class of the same shape: an audio tower, a projector and a causal language model whose input
  embeddings get the audio features at the audio placeholder tokens) by hub id, local folder or built-in
  name, with its processor (feature extractor + tokenizer + chat template), tokenizer padding on the left.
- :func:`add_lora`: LoRA on the *language model's* attention projections by default. The Whisper-style
  encoder has ``q_proj``/``k_proj``/``v_proj`` too, so targets are a pattern anchored on the language
  model, and user lists exclude the audio tower and projector: the encoder stays frozen.
- :func:`prompt_embeddings`: the processor's input ids and mel features merged into input embeddings by
  the model's *own* forward (a pre-hook on the language model takes its ``inputs_embeds`` and stops the
  call there). With the encoder, projector and embeddings frozen and LoRA only inside the language model,
  these embeddings are the same for the policy and the reference (adapter on or off), so each prompt is
  encoded once per step and its embeddings serve every rollout of its group and every log-prob pass.
- :class:`LanguageModelOnEmbeddings`: the language model + LM head as a causal LM that takes either token
  ids or embeddings, with ``logits_to_keep`` and a KV cache, so :mod:`lm_sampling`'s decode loop and
  :func:`causal_lm.completion_logprobs` run on it unchanged.

The reference is the same network with the adapter disabled, as for text LMs.
"""

from __future__ import annotations

import inspect
import warnings
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from ..config import ConfigError, LoraConfig, ModelConfig
from ..hub import first_line, is_hub_id, require_loadable
from ..kinds import resolve_model_path

AUDIO_KIND = "audio"
# Modules LoRA never touches: the audio encoder and the projector (their output is the encoded prompt).
FROZEN_PATTERN = r".*(audio_tower|multi_modal_projector|audio_encoder|audio_projection).*"
LM_ATTENTION_PATTERN = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


def load_processor(path: str, revision: str | None = None):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path, revision=revision)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or not hasattr(processor, "feature_extractor"):
        raise ConfigError(f"model.name_or_path: {path!r} has no audio processor (feature extractor + tokenizer)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return processor


def _model_class(path: str, revision: str | None):
    """The transformers class of an audio-LM folder or hub id (from its config's architectures)."""
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, revision=revision)
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return transformers.Qwen2AudioForConditionalGeneration


def load_audio_lm(model_cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
    """``(model, processor)``; an unloadable id or folder is a ConfigError naming ``model.name_or_path``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = resolve_model_path(model_cfg.name_or_path, kind=AUDIO_KIND)
    if is_hub_id(path):
        require_loadable(path, model_cfg.revision)
    try:
        processor = load_processor(path, model_cfg.revision)
        model_class = _model_class(path, model_cfg.revision)
        # transformers types revision as str; None and "main" both mean the default branch
        model = model_class.from_pretrained(path, revision=model_cfg.revision or "main", dtype=dtype)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"model.name_or_path: cannot load an audio-language model from {model_cfg.name_or_path!r}: "
            f"{first_line(error)}"
        ) from None
    if processor.tokenizer.eos_token_id is None:
        raise ConfigError(f"model.name_or_path: the tokenizer of {model_cfg.name_or_path!r} has no EOS token")
    audio_token = getattr(processor, "audio_token", None)
    if audio_token is None or getattr(model.config, "audio_token_id", None) is None:
        raise ConfigError(f"model.name_or_path: {model_cfg.name_or_path!r} has no audio placeholder token")
    model = model.to(device)  # pyright: ignore[reportArgumentType]
    model.eval().requires_grad_(False)
    return model, processor


def base_audio_lm(name_or_path: str, dtype: torch.dtype = torch.float32):
    """The bare base model of a hub id, folder or built-in name (what an exported adapter loads onto)."""
    path = resolve_model_path(name_or_path, kind=AUDIO_KIND)
    return _model_class(path, None).from_pretrained(path, dtype=dtype)


def add_lora(model, lora: LoraConfig):
    """A PeftModel with a fresh LoRA adapter on the language model only (attention projections unless
    ``lora.target_modules`` names others; the audio tower and projector are always excluded)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    if lora.target_modules:
        targets: list[str] | str = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    else:
        targets = LM_ATTENTION_PATTERN
    peft_config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,  # pyright: ignore[reportArgumentType]
        lora_dropout=lora.dropout,
        target_modules=targets,
        exclude_modules=None if isinstance(targets, str) and targets != "all-linear" else FROZEN_PATTERN,
        bias="none",
    )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, peft_config)
    except ValueError as error:
        raise ConfigError(f"lora.target_modules: {error}") from None


def chat_prompt(processor, question: str, chat_template: bool = True) -> str:
    """One user turn holding the clip then the question (the processor's chat template), or, for a base model
    without one, ``<|audio_bos|><|AUDIO|><|audio_eos|>question`` (Qwen2-Audio's pre-training layout)."""
    if chat_template and getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": question}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    bos = getattr(processor, "audio_bos_token", "<|audio_bos|>")
    eos = getattr(processor, "audio_eos_token", "<|audio_eos|>")
    return f"{bos}{processor.audio_token}{eos}{question}"


def encode_inputs(processor, questions: list[str], clips: list, device: torch.device, chat_template: bool = True):
    """The processor's batch (left-padded ids with the audio placeholder expanded, mel features and masks)."""
    sampling_rate = processor.feature_extractor.sampling_rate
    batch = processor(
        text=[chat_prompt(processor, q, chat_template) for q in questions],
        audio=list(clips),
        sampling_rate=sampling_rate,
        return_tensors="pt",
        padding=True,
    )
    return {key: value.to(device) for key, value in batch.items() if isinstance(value, Tensor)}


class _Stop(Exception):
    pass


def _decoder(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base, base.get_decoder()


@torch.no_grad()
def prompt_embeddings(model, inputs: dict[str, Tensor]) -> Tensor:
    """The input embeddings ``(B, L, H)`` the model's language model would get for ``inputs`` (text embeddings
    with the projected audio features written at the placeholder positions), computed by the model's own
    forward up to its language model."""
    base, decoder = _decoder(model)
    captured: dict[str, Tensor] = {}

    def grab(_module, args, kwargs):
        captured["embeds"] = kwargs.get("inputs_embeds")
        raise _Stop

    handle = decoder.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        base(**inputs, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    embeds = captured.get("embeds")
    if embeds is None:
        raise ConfigError(
            "model.name_or_path: the audio model's forward did not pass inputs_embeds to its language model"
        )
    return embeds


def _cache_keyword(module) -> str:
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


class LanguageModelOnEmbeddings(torch.nn.Module):
    """The language model of an audio-LM (with its LoRA layers) and the LM head, as a causal LM over token ids
    or input embeddings. It holds no weights of its own: the peft model owns them (``disable_adapter`` and
    the LoRA folding of :mod:`lm_sampling` act on it)."""

    def __init__(self, peft_model) -> None:
        super().__init__()
        base, decoder = _decoder(peft_model)
        # Kept out of the module tree, so parameters() and state_dict() stay the peft model's business.
        self._parts = SimpleNamespace(peft=peft_model, decoder=decoder, head=base.get_output_embeddings())
        self.config = decoder.config
        self._cache_arg = _cache_keyword(decoder)

    def get_input_embeddings(self):
        return self._parts.decoder.get_input_embeddings()

    def get_base_model(self):
        return self

    def forward(
        self,
        input_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        cache: Any = None,
    ) -> SimpleNamespace:
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        extra = {self._cache_arg: cache} if cache is not None else {}
        hidden = self._parts.decoder(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **extra,
        ).last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return SimpleNamespace(logits=self._parts.head(hidden))
