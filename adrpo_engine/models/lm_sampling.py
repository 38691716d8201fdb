"""Rollouts of causal LMs: completions sampled with a KV-cached decode loop (or ``generate``).

:func:`sample_completions` folds the LoRA update into the adapted weights for the duration of sampling
(``W + scale * B A`` written into a temporary tensor; the original tensor is put back afterwards, bit for
bit, unlike merge/unmerge which drifts by rounding) and decodes with a plain KV-cached loop (a forward per
token, top-p/temperature, EOS stop) that pre-fills each prompt once for its whole group and drops
finished rows from the batch and the cache as it goes. ``decode="generate"`` uses ``model.generate``
instead (for architectures whose cache the loop does not handle).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ..config import LLMConfig

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
    # Audio-language models: the prompts' input embeddings (N, L, H) with the audio features merged in,
    # encoded once per prompt and fed to every forward instead of embedding prompt_ids (models.audio_lm).
    prompt_embeds: Tensor | None = None

    @property
    def input_ids(self) -> Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)

    def rows(self, index: Tensor | slice) -> Rollouts:
        embeds = None if self.prompt_embeds is None else self.prompt_embeds[index]
        return Rollouts(
            self.prompt_ids[index],
            self.prompt_mask[index],
            self.completion_ids[index],
            self.completion_mask[index],
            embeds,
        )


@contextmanager
def lora_folded(peft_model) -> Iterator[None]:
    """Run a block with each LoRA layer's update folded into its base weight and the adapter disabled,
    so every forward is one matmul per layer. The original weight tensors are restored afterwards, exactly.

    Each folded layer gets a new weight Parameter for the block (the original object is put back after), not
    new data in the shared one: a weight tied to another module (an LM head tied to the input embeddings,
    with LoRA on the head) would otherwise change that module too, and the sampled tokens would be embedded
    with the head's folded weight."""
    from peft.tuners.lora import LoraLayer

    swapped: list[tuple[torch.nn.Module, torch.nn.Parameter]] = []
    try:
        with torch.no_grad():
            for module in peft_model.modules():
                if not isinstance(module, LoraLayer):
                    continue
                base = module.get_base_layer()
                weight = cast(torch.nn.Parameter, base.weight)
                folded = weight.data
                for name in module.active_adapters:
                    if name not in module.lora_A:
                        continue
                    # Every LoRA layer kind (Linear, Embedding, Conv) defines it; the base class does not declare it.
                    delta = cast(Tensor, cast(Any, module).get_delta_weight(name))
                    folded = folded + delta.to(weight.dtype)
                if folded is not weight.data:
                    swapped.append((base, weight))
                    base.weight = torch.nn.Parameter(folded, requires_grad=False)
        with peft_model.disable_adapter():
            yield
    finally:
        for base, original in reversed(swapped):
            base.weight = original


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


def pick_tokens(logits: Tensor, temperature: float, top_p: float, uniforms: Tensor | None = None) -> Tensor:
    """One token per row. ``uniforms`` (one U(0, 1) draw per row) picks by the inverse CDF, so a row's token
    depends on its own draw only, not on the rest of the batch; without them, ``torch.multinomial``."""
    probabilities = filter_top_p(logits.float() / temperature, top_p).softmax(dim=-1)
    if uniforms is None:
        return torch.multinomial(probabilities, 1).squeeze(1)
    cdf = probabilities.cumsum(dim=-1)
    target = uniforms.to(cdf.device, cdf.dtype).unsqueeze(1) * cdf[:, -1:]
    return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp(max=cdf.shape[-1] - 1)


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
            self.key_buffer[:, :, self.length : end] = key_states
            self.value_buffer[:, :, self.length : end] = value_states
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
        cache.layers[:] = [PreallocatedLayer() for _ in cache.layers]
    return cache


def repeat_rows(tensor: Tensor, repeat: int) -> Tensor:
    return tensor if repeat == 1 else tensor.repeat_interleave(repeat, dim=0)


@torch.no_grad()
def decode_loop(
    model,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_ids: Sequence[int],
    pad_id: int,
    repeat: int = 1,
    compact_at: float = COMPACT_AT,
    uniforms: Tensor | None = None,
    prompt_embeds: Tensor | None = None,
    others_running: Callable[[bool], bool] | None = None,
) -> Tensor:
    """KV-cached sampling of ``repeat`` completions per prompt row (rows grouped per prompt).

    The prompts are pre-filled once and their cache copied ``repeat`` times (a group shares its prompt).
    Then one forward per new token; once a fraction ``compact_at`` of the rows in the batch has finished
    (EOS), those rows are dropped from the batch and the cache, so short completions stop costing compute.
    ``uniforms`` ``(rows * repeat, max_new_tokens)``: the draw of each row at each position (:func:`pick_tokens`),
    so a row's completion does not depend on the batch it was sampled in (data-parallel jobs draw them per
    prompt group). Returns ``(rows * repeat, T)`` token ids, padded with ``pad_id`` after EOS;
    ``T <= max_new_tokens``.
    ``prompt_embeds`` (audio-language models): the prompts' input embeddings, pre-filled instead of the ids.
    ``others_running`` (a job whose weights are sharded over its processes): told whether this rank is still
    decoding, says whether any rank is; a rank whose rows are all done keeps stepping them (their tokens stay
    padding) until every rank is, so all ranks run the same forwards."""
    cache = preallocated_cache(model, prompt_ids.shape[1] + max_new_tokens)
    cache_arg = {cache_keyword(model): cache}
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
    prompt_input = {"input_ids": prompt_ids} if prompt_embeds is None else {"inputs_embeds": prompt_embeds}
    out = model(
        **prompt_input,
        attention_mask=prompt_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **cache_arg,
    )
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
        draws = None if uniforms is None else uniforms[alive, t]
        chosen = pick_tokens(logits, temperature, top_p, draws).masked_fill(finished, pad_id)
        tokens[alive, t] = chosen
        finished |= torch.isin(chosen, eos)
        done = int(finished.sum())
        running = done < finished.numel()
        if others_running is not None:
            running = others_running(running)
        if t == max_new_tokens - 1 or not running:
            return tokens[:, : t + 1]
        if compact_at * finished.numel() <= done < finished.numel():
            keep = (~finished).nonzero().flatten()
            cache.batch_select_indices(keep)
            mask, next_position, alive, chosen = mask[keep], next_position[keep], alive[keep], chosen[keep]
            finished = finished[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(
            input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position, use_cache=True, **cache_arg
        )
        logits = out.logits[:, -1]
        next_position = next_position + 1
    return tokens


@torch.no_grad()
def decode_generate(
    model,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_ids: Sequence[int],
    pad_id: int,
    repeat: int = 1,
    synced: bool = False,
) -> Tensor:
    """The same sampling through ``model.generate`` (slower per token; any architecture); ``synced``: every rank
    steps until all are done (transformers' ``synced_gpus``, for weights sharded over the processes)."""
    out = model.generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        top_k=0,
        max_new_tokens=max_new_tokens,
        eos_token_id=list(eos_ids),
        pad_token_id=pad_id,
        num_return_sequences=repeat,
        synced_gpus=synced,
    )
    return out[:, prompt_ids.shape[1] :]


def sample_with_settings(
    peft_model,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    llm: LLMConfig,
    *,
    eos_ids: Sequence[int],
    pad_id: int,
    repeat: int,
    adapter: bool,
    uniforms: Tensor | None,
    **decoder: Any,
) -> Rollouts:
    """:func:`sample_completions` with a job's ``llm`` sampling settings (length, temperature, top-p, LoRA
    folding); ``decoder``: the rest (``decode``, or an audio-LM's ``forward_model`` and ``prompt_embeds``)."""
    return sample_completions(
        peft_model,
        prompt_ids,
        prompt_mask,
        max_new_tokens=llm.max_new_tokens,
        temperature=llm.temperature,
        top_p=llm.top_p,
        eos_ids=eos_ids,
        pad_id=pad_id,
        repeat=repeat,
        adapter=adapter,
        fold_lora=llm.fold_lora_for_sampling,
        uniforms=uniforms,
        **decoder,
    )


def sample_completions(
    peft_model,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_ids: Sequence[int],
    pad_id: int,
    repeat: int = 1,
    adapter: bool = True,
    fold_lora: bool = True,
    decode: str = "loop",
    uniforms: Tensor | None = None,
    forward_model=None,
    prompt_embeds: Tensor | None = None,
    others_running: Callable[[bool], bool] | None = None,
) -> Rollouts:
    """``repeat`` completions per prompt row (grouped per prompt), from the policy (``adapter``) or the
    reference; randomness from ``uniforms`` (the loop decoder, see :func:`decode_loop`) or from torch's
    global generator (the trainer seeds it per step).
    ``forward_model``: the module the decoder calls when it is not ``peft_model`` itself (an audio-LM's
    language model on embeddings; the adapter switches still act on ``peft_model``), with the prompts'
    ``prompt_embeds`` (loop decoder only). ``others_running``: decode in lockstep with the other ranks
    (:func:`decode_loop`); the LoRA update is then never folded (sharded weights are not swapped)."""
    if uniforms is not None and decode != "loop":
        raise ValueError("per-row draws (uniforms) need the loop decoder")
    if prompt_embeds is not None and decode != "loop":
        raise ValueError("decode 'generate' does not take prompt embeddings: use the loop decoder")
    was_training = peft_model.training
    peft_model.eval()
    fold = adapter and fold_lora and others_running is None
    context = lora_folded(peft_model) if fold else adapter_enabled(peft_model, adapter)
    model = peft_model if forward_model is None else forward_model
    args = (model, prompt_ids, prompt_mask, max_new_tokens, temperature, top_p, eos_ids, pad_id)
    try:
        with context:
            if decode == "loop":
                tokens = decode_loop(
                    *args, repeat=repeat, uniforms=uniforms, prompt_embeds=prompt_embeds, others_running=others_running
                )
            else:
                tokens = decode_generate(*args, repeat=repeat, synced=others_running is not None)
    finally:
        peft_model.train(was_training)
    return Rollouts(
        repeat_rows(prompt_ids, repeat),
        repeat_rows(prompt_mask, repeat),
        tokens,
        completion_mask_from(tokens, eos_ids),
        None if prompt_embeds is None else repeat_rows(prompt_embeds, repeat),
    )
