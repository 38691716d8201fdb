"""ADRPO-GRPO for audio-language models (docs/audio.md): the text trainer's step on (clip, question) prompts.

Everything after the prompts is :class:`~adrpo_engine.trainers.llm.LLMTrainer`'s: rollouts, rewards (any
text reward, e.g. ``mc_answer``), group advantages, ``beta_i``, reference log-probs with the adapter
disabled, the PPO-clip + k3 KL token loss, micro-batches, checkpoints and exact resume. What differs is
the policy (:class:`AudioPolicy`): each prompt row's clip is decoded, mixed to mono and resampled to the
feature extractor's rate, the processor builds the chat prompt with the audio placeholder and the mel
features, and the model's own forward merges them into input embeddings *once per prompt*; those
embeddings (adapter-independent: the encoder is frozen and LoRA sits in the language model only) are
pre-filled for the whole group at sampling time and prepended to the completion tokens in every
log-prob pass (policy, reference, old).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..audio_io import load_clip, write_wav
from ..config import ConfigError, JobConfig
from ..data import PromptRow
from ..models import audio_lm as A
from ..models import causal_lm as C
from ..models import lm_sampling as S
from ..progress import AUDIO_SAMPLE
from ..rewards.choice import LETTERS, choices_list
from .llm import LLMTrainer

AUDIO_SAMPLES_DIR = Path("samples") / "audio"


class AudioPolicy:
    """An audio-LM with a LoRA adapter on its language model, its processor and the job's sampling settings
    (the interface of :class:`~adrpo_engine.trainers.llm.TextPolicy`)."""

    def __init__(self, config: JobConfig, device: torch.device, dtype: torch.dtype) -> None:
        self.config = config
        self.device = device
        if config.llm.decode != "loop":
            raise ConfigError("llm.decode: audio-language models are sampled with the loop decoder ('loop')")
        base, self.processor = A.load_audio_lm(config.model, device, dtype)
        self.tokenizer = self.processor.tokenizer
        self.model = A.add_lora(base, config.lora)
        self.lm = A.LanguageModelOnEmbeddings(self.model)
        self.eos_ids = C.eos_token_ids(base, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        self.sampling_rate = int(self.processor.feature_extractor.sampling_rate)
        prompts_file = config.prompts.file
        self.base_dir = Path(prompts_file).expanduser().parent if prompts_file and ":" not in prompts_file else None

    def clip(self, row: PromptRow) -> np.ndarray:
        column = self.config.audio.column
        if column not in row.columns:
            known = ", ".join(sorted(row.columns)) or "none"
            raise ConfigError(f"audio.column: the prompt row {row.prompt[:60]!r} has no {column!r} column ({known})")
        return load_clip(row.columns[column], self.sampling_rate, self.config.audio.max_seconds, self.base_dir)

    def question(self, row: PromptRow) -> str:
        """The text the model reads after the clip: the prompt, its options (``audio.choices_column``) and
        ``audio.instruction``."""
        audio = self.config.audio
        parts = [row.prompt]
        if audio.choices_column is not None:
            options = choices_list(row.columns.get(audio.choices_column))
            if not options:
                raise ConfigError(f"audio.choices_column: the row {row.prompt[:60]!r} has no options")
            parts.append(" ".join(f"({LETTERS[i]}) {option}" for i, option in enumerate(options)))
        if audio.instruction:
            parts.append(audio.instruction)
        return " ".join(parts)

    def encode(self, rows: list[PromptRow]) -> tuple[Tensor, Tensor, Tensor]:
        """Left-padded ids, mask and merged input embeddings ``(B, L, H)`` of the rows' (clip, question) prompts."""
        inputs = A.encode_inputs(
            self.processor, [self.question(row) for row in rows], [self.clip(row) for row in rows], self.device
        )
        limit = self.config.llm.max_prompt_tokens
        if limit is not None and inputs["input_ids"].shape[1] > limit:
            raise ConfigError(
                f"llm.max_prompt_tokens: an audio prompt is {inputs['input_ids'].shape[1]} tokens (audio placeholders "
                f"included) and cannot be cut without losing its clip; raise the limit to at least that"
            )
        return inputs["input_ids"], inputs["attention_mask"], A.prompt_embeddings(self.model, inputs)

    def sample_rows(
        self, rows: list[PromptRow], repeat: int, adapter: bool = True, uniforms: Tensor | None = None
    ) -> S.Rollouts:
        """``repeat`` completions of each row's (clip, question) prompt; ``uniforms``: per-row draws
        (``lm_sampling.decode_loop``), as for text."""
        ids, mask, embeds = self.encode(rows)
        return S.sample_with_settings(
            self.model,
            ids,
            mask,
            self.config.llm,
            eos_ids=self.eos_ids,
            pad_id=self.pad_id,
            repeat=repeat,
            adapter=adapter,
            uniforms=uniforms,
            forward_model=self.lm,
            prompt_embeds=embeds,
        )

    def texts(self, rollouts: S.Rollouts) -> list[str]:
        return C.decode_completions(self.tokenizer, rollouts.completion_ids, rollouts.completion_mask)

    def logprobs(self, rollouts: S.Rollouts, adapter: bool, with_entropy: bool = False):
        context = nullcontext() if adapter else self.model.disable_adapter()
        with context:
            return C.completion_logprobs(self.lm, rollouts, self.config.llm.temperature, with_entropy)


class AudioLMTrainer(LLMTrainer):
    """:class:`LLMTrainer` with :class:`AudioPolicy`; logged samples carry their prompt's clip as a WAV file."""

    def setup(self) -> None:
        super().setup()
        wanted = set(self.config.prompts.eval)
        if wanted:  # prompts.eval names training rows here (a question alone has no clip)
            picked = [row for row in self.rows if row.prompt in wanted]
            if not picked:
                raise ConfigError("prompts.eval: an audio job's eval prompts must be questions of its prompt rows")
            self.eval_rows = picked[: len(wanted)]
        for row in self.eval_rows:  # every logged clip must load: found now, not at the first sample step
            self.audio_policy.clip(row)

    def make_policy(self) -> AudioPolicy:
        return AudioPolicy(self.config, self.device, self.dtype)

    @property
    def audio_policy(self) -> AudioPolicy:
        assert isinstance(self.policy, AudioPolicy)  # what make_policy() made
        return self.policy

    def reward_columns(self, rows: list[PromptRow], repeat: int) -> dict[str, list]:
        """Every column but the clip (rewards read text; a remote reward could not send an array)."""
        columns = super().reward_columns(rows, repeat)
        columns.pop(self.config.audio.column, None)
        return columns

    def sample_media(self, index: int, row: PromptRow) -> tuple[str, str | None]:
        relative = AUDIO_SAMPLES_DIR / f"eval-{index}.wav"
        target = self.run_dir / relative
        if not target.is_file():
            write_wav(target, self.audio_policy.clip(row), self.audio_policy.sampling_rate)
        return AUDIO_SAMPLE, str(relative)
