"""Causal LMs for GRPO/ADRPO: loading, LoRA, fast rollouts and per-token log-probabilities.

- Any ``AutoModelForCausalLM`` by hub id or local folder, or ``builtin:tiny-lm`` (see ``tiny_lm``).
  A local folder with a ``tokenizer.json`` is read with ``PreTrainedTokenizerFast`` (``AutoTokenizer``
  may pick a slow tokenizer for a locally trained vocabulary, which splits text differently).
- LoRA through peft, with a default target list per architecture (:data:`DEFAULT_TARGETS`); GPT-2's
  ``Conv1D`` layers need ``fan_in_fan_out=True``. ``lora.target_modules: [all-linear]`` is peft's
  every-linear-layer shortcut.
- The reference policy is the same network with the adapter disabled (``disable_adapter()``): no
  second copy of the weights.
- Rollouts: :func:`sample_completions` folds the LoRA update into the adapted weights for the
  duration of sampling (``W + scale * B A`` written into a temporary tensor; the original tensor is put
  back afterwards, bit for bit, unlike merge/unmerge which drifts by rounding) and decodes with a
  plain KV-cached loop (a forward per token, top-p/temperature, EOS stop) that pre-fills each prompt
  once for its whole group and drops finished rows from the batch and the cache as it goes. ``decode="generate"`` uses ``model.generate`` instead (for architectures whose
  cache the loop does not handle).
- :func:`completion_logprobs`: log-probabilities of the completion tokens (logits divided by the
  sampling temperature, as in TRL) and optionally their entropy, computing logits only for the
  completion positions (``logits_to_keep``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import ConfigError, LoraConfig, ModelConfig
from ..kinds import resolve_model_path

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"

_ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
# Default LoRA targets by ``config.model_type`` (attention projections; add the MLP's gate/up/down via
# lora.target_modules). Architectures not listed fall back to peft's own per-architecture defaults.
DEFAULT_TARGETS: dict[str, list[str]] = {
    "llama": _ATTENTION, "qwen2": _ATTENTION, "qwen3": _ATTENTION, "mistral": _ATTENTION,
    "gemma": _ATTENTION, "gemma2": _ATTENTION, "phi3": ["qkv_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
}
FAN_IN_FAN_OUT = {"gpt2"}  # Conv1D layers store weights transposed
# Drop finished rows from the decoding batch once this fraction of it has hit EOS (each drop copies the
# KV cache once; waiting for a quarter keeps the copies rare).
COMPACT_AT = 0.25


@dataclass
class Rollouts:
    """``N`` completions of left-padded prompts: ids ``(N, T)`` (pad after EOS) and their mask ``(N, T)``
    (1 up to and including the first EOS)."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor

    @property
    def input_ids(self) -> Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)

    def rows(self, index: Tensor | slice) -> Rollouts:
        return Rollouts(self.prompt_ids[index], self.prompt_mask[index], self.completion_ids[index],
                        self.completion_mask[index])


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
    try:
        tokenizer = load_tokenizer(path, model_cfg.revision)
        model = AutoModelForCausalLM.from_pretrained(path, revision=model_cfg.revision, dtype=dtype)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"model.name_or_path: cannot load a causal LM from {model_cfg.name_or_path!r}: {error}"
        ) from None
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"model.name_or_path: the tokenizer of {model_cfg.name_or_path!r} has no EOS token")
    model.to(device).eval().requires_grad_(False)
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
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora_targets(model, lora),
        fan_in_fan_out=model.config.model_type in FAN_IN_FAN_OUT, task_type="CAUSAL_LM", bias="none",
    )
    try:
        return get_peft_model(model, peft_config)
    except ValueError as error:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"lora.target_modules: {error}") from None


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


def encode_prompts(tokenizer, prompts: Sequence[str], device: torch.device, chat_template: bool = False,
                   max_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Left-padded ``(ids, mask)``; with ``chat_template`` each prompt becomes one user message."""
    if chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("llm.chat_template: the model's tokenizer has no chat template")
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True) for text in prompts]
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=not chat_template,
                        truncation=max_length is not None, max_length=max_length)
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
# Sampling


@contextmanager
def lora_folded(peft_model) -> Iterator[None]:
    """Run a block with each LoRA layer's update folded into its base weight and the adapter disabled,
    so every forward is one matmul per layer. The original weight tensors are restored afterwards, exactly."""
    from peft.tuners.lora import LoraLayer

    swapped: list[tuple[torch.nn.Parameter, Tensor]] = []
    try:
        with torch.no_grad():
            for module in peft_model.modules():
                if not isinstance(module, LoraLayer):
                    continue
                for name in module.active_adapters:
                    if name not in module.lora_A:
                        continue
                    weight = module.get_base_layer().weight
                    swapped.append((weight, weight.data))
                    weight.data = weight.data + module.get_delta_weight(name).to(weight.dtype)
        with peft_model.disable_adapter():
            yield
    finally:
        for weight, original in reversed(swapped):
            weight.data = original


@contextmanager
def adapter_enabled(peft_model, enabled: bool) -> Iterator[None]:
    if enabled:
        yield
    else:
        with peft_model.disable_adapter():
            yield


def filter_top_p(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (the most likely always kept)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def pick_tokens(logits: Tensor, temperature: float, top_p: float) -> Tensor:
    probabilities = filter_top_p(logits.float() / temperature, top_p).softmax(dim=-1)
    return torch.multinomial(probabilities, 1).squeeze(1)


def completion_mask_from(tokens: Tensor, eos_ids: Sequence[int]) -> Tensor:
    """1 for each token up to and including the first EOS of its row, 0 after."""
    is_eos = torch.isin(tokens, torch.tensor(list(eos_ids), device=tokens.device))
    eos_before = is_eos.int().cumsum(dim=1) - is_eos.int()  # EOS tokens strictly before position t
    return (eos_before == 0).long()


def cache_keyword(model) -> str:
    """The forward's KV-cache argument: ``cache`` in recent transformers 5.x, ``past_key_values`` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def preallocated_cache(model, capacity: int):
    """A DynamicCache whose full-attention layers write into buffers of ``capacity`` positions instead of
    concatenating a new tensor per token (``torch.cat`` of the whole cache was ~25% of CPU decoding time);
    attention still sees only the filled part. Models with other layer kinds keep the stock layers."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
            batch, heads, _, _ = key_states.shape
            self.device = key_states.device
            self.key_buffer = key_states.new_empty((batch, heads, capacity, key_states.shape[-1]))
            self.value_buffer = value_states.new_empty((batch, heads, capacity, value_states.shape[-1]))
            self.length = 0
            self.is_initialized = True

        def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if end > capacity:
                raise RuntimeError(f"KV cache capacity {capacity} exceeded")
            self.key_buffer[:, :, self.length:end] = key_states
            self.value_buffer[:, :, self.length:end] = value_states
            self.length = end
            self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length if self.is_initialized else 0

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.get_seq_length() > 0:
                self.key_buffer = self.key_buffer.repeat_interleave(repeats, dim=0)
                self.value_buffer = self.value_buffer.repeat_interleave(repeats, dim=0)

        def batch_select_indices(self, indices: Tensor) -> None:
            if self.get_seq_length() > 0:
                self.key_buffer = self.key_buffer[indices]
                self.value_buffer = self.value_buffer[indices]

    cache = DynamicCache(config=model.config)
    if all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [PreallocatedLayer() for _ in cache.layers]
    return cache


def repeat_rows(tensor: Tensor, repeat: int) -> Tensor:
    return tensor if repeat == 1 else tensor.repeat_interleave(repeat, dim=0)


@torch.no_grad()
def decode_loop(model, prompt_ids: Tensor, prompt_mask: Tensor, max_new_tokens: int, temperature: float,
                top_p: float, eos_ids: Sequence[int], pad_id: int, repeat: int = 1,
                compact_at: float = COMPACT_AT) -> Tensor:
    """KV-cached sampling of ``repeat`` completions per prompt row (rows grouped per prompt).

    The prompts are pre-filled once and their cache copied ``repeat`` times (a group shares its prompt).
    Then one forward per new token; once a fraction ``compact_at`` of the rows in the batch has finished
    (EOS), those rows are dropped from the batch and the cache, so short completions stop costing compute.
    Returns ``(rows * repeat, T)`` token ids, padded with ``pad_id`` after EOS; ``T <= max_new_tokens``."""
    cache = preallocated_cache(model, prompt_ids.shape[1] + max_new_tokens)
    cache_arg = {cache_keyword(model): cache}
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                logits_to_keep=1, **cache_arg)
    logits = repeat_rows(out.logits[:, -1], repeat)
    mask = repeat_rows(prompt_mask, repeat)
    next_position = repeat_rows(positions[:, -1:] + 1, repeat)
    if repeat > 1:
        cache.batch_repeat_interleave(repeat)
    device = prompt_ids.device
    eos = torch.tensor(list(eos_ids), device=device)
    tokens = torch.full((logits.shape[0], max_new_tokens), pad_id, dtype=torch.long, device=device)
    alive = torch.arange(logits.shape[0], device=device)  # original row of each row still in the batch
    finished = torch.zeros(logits.shape[0], dtype=torch.bool, device=device)
    for t in range(max_new_tokens):
        chosen = pick_tokens(logits, temperature, top_p).masked_fill(finished, pad_id)
        tokens[alive, t] = chosen
        finished |= torch.isin(chosen, eos)
        done = int(finished.sum())
        if t == max_new_tokens - 1 or done == finished.numel():
            return tokens[:, : t + 1]
        if done >= compact_at * finished.numel():
            keep = (~finished).nonzero().flatten()
            cache.batch_select_indices(keep)
            mask, next_position, alive, chosen = mask[keep], next_position[keep], alive[keep], chosen[keep]
            finished = finished[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position, use_cache=True,
                    **cache_arg)
        logits = out.logits[:, -1]
        next_position = next_position + 1
    return tokens


@torch.no_grad()
def decode_generate(model, prompt_ids: Tensor, prompt_mask: Tensor, max_new_tokens: int, temperature: float,
                    top_p: float, eos_ids: Sequence[int], pad_id: int, repeat: int = 1) -> Tensor:
    """The same sampling through ``model.generate`` (slower per token; any architecture)."""
    out = model.generate(
        input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=temperature, top_p=top_p,
        top_k=0, max_new_tokens=max_new_tokens, eos_token_id=list(eos_ids), pad_token_id=pad_id,
        num_return_sequences=repeat,
    )
    return out[:, prompt_ids.shape[1]:]


def sample_completions(peft_model, prompt_ids: Tensor, prompt_mask: Tensor, *, max_new_tokens: int,
                       temperature: float, top_p: float, eos_ids: Sequence[int], pad_id: int, repeat: int = 1,
                       adapter: bool = True, fold_lora: bool = True, decode: str = "loop") -> Rollouts:
    """``repeat`` completions per prompt row (grouped per prompt), from the policy (``adapter``) or the
    reference; randomness from torch's global generator (the trainer seeds it per step)."""
    was_training = peft_model.training
    peft_model.eval()
    decoder = decode_loop if decode == "loop" else decode_generate
    context = lora_folded(peft_model) if adapter and fold_lora else adapter_enabled(peft_model, adapter)
    try:
        with context:
            tokens = decoder(peft_model, prompt_ids, prompt_mask, max_new_tokens, temperature, top_p, eos_ids, pad_id,
                             repeat=repeat)
    finally:
        peft_model.train(was_training)
    return Rollouts(repeat_rows(prompt_ids, repeat), repeat_rows(prompt_mask, repeat), tokens,
                    completion_mask_from(tokens, eos_ids))


# ----------------------------------------------------------------------------------------------
# Log-probabilities


def token_logprobs_from_logits(logits: Tensor, tokens: Tensor) -> Tensor:
    """``log softmax(logits)[token]`` per position without materialising the full log-softmax twice."""
    logits = logits.float()
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def completion_logprobs(model, rollouts: Rollouts, temperature: float = 1.0, with_entropy: bool = False
                        ) -> tuple[Tensor, Tensor | None]:
    """Per-token log-probs ``(N, T)`` of the completion tokens under ``model`` (as it is: adapter on or
    off is the caller's context), and their entropy ``(N, T)`` (detached) if asked."""
    input_ids, mask = rollouts.input_ids, rollouts.attention_mask
    width = rollouts.completion_ids.shape[1]
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False,
                   logits_to_keep=width + 1).logits[:, :-1]
    logits = logits / temperature
    logp = token_logprobs_from_logits(logits, rollouts.completion_ids)
    entropy = None
    if with_entropy:
        from ..objectives import token_entropy

        with torch.no_grad():
            entropy = token_entropy(logits.detach())
    return logp, entropy
