"""``builtin:tiny-audio-lm``: a miniature Qwen2-Audio built from configs, pre-trained here on generated clips.

- Tokenizer: byte-level BPE trained locally (the tokenizers library) on the world's questions and answers,
  with Qwen2-Audio's special tokens (``<|AUDIO|>``, ``<|audio_bos|>``, ``<|audio_eos|>``, ``<|im_start|>``,
  ``<|im_end|>``) and a chat template whose audio item expands to the audio placeholder.
- Feature extractor: transformers' ``WhisperFeatureExtractor`` (log-mel, 16 kHz, hop 160) with
  :data:`MEL_BINS` bins and 2-second windows (``chunk_length=2``: 200 frames, 50 audio tokens).
- Model: ``Qwen2AudioForConditionalGeneration`` (a Whisper-style encoder, the projector and a 2-layer
  Qwen2 LM), randomly initialised, then supervised on ``<answer>OPTION</answer>`` completions of the
  pre-training clips for a fixed number of steps: enough to answer clearly above chance, far from perfect
  (docs/audio.md has the numbers). Saved as an ordinary transformers folder (model + processor), so it
  loads through the same loader as ``Qwen/Qwen2-Audio-7B-Instruct``.

Clip seeds: pre-training uses ``0 .. recipe.pretrain_seeds - 1``; the RL prompts (``builtin:audio-tones``)
and the held-out evaluation (``builtin:audio-tones-heldout``) use seeds far above, never seen in pre-training.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ...builds import build_once
from ...models.audio_lm import chat_prompt
from ...models.pretraining import pretrain_update
from ...paths import builtin_models_dir
from ...progress import BUILDING, Phase, StepReporter, report_phase
from . import signals
from .recipe import Recipe, active_recipe

MODEL_NAME = "builtin:tiny-audio-lm"
CACHE_VERSION = "v2"  # bump when the clips, the architecture or the recipe change

PAD = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
AUDIO, AUDIO_BOS, AUDIO_EOS = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, AUDIO, AUDIO_BOS, AUDIO_EOS]
# Qwen2-Audio-Instruct's layout without the system turn: the audio item becomes bos + placeholder + eos.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' or 'audio' in item or 'audio_url' in item %}<|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

VOCAB_SIZE = 400
MEL_BINS = 32
WINDOW_SECONDS = 2  # the feature extractor's chunk_length: every clip is padded to this
ENCODER = {"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 128}
TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
SEED = 0
MODEL_INPUTS = ("input_ids", "attention_mask", "input_features", "feature_attention_mask")


def answer_text(choice: str) -> str:
    return f"<answer>{choice}</answer>"


def cache_path(recipe: Recipe) -> Path:
    return builtin_models_dir() / f"tiny-audio-lm-{CACHE_VERSION}-{recipe.name}"


def tiny_audio_lm_path(recipe: Recipe | None = None) -> Path:
    """The cached model folder, built on first use."""
    recipe = recipe or active_recipe()
    return build_once(cache_path(recipe), lambda folder: build(folder, recipe))


# ----------------------------------------------------------------------------------------------
# Parts


def train_tokenizer(questions: list[signals.Question]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = ["user\n", "assistant\n"]
    for question, choices in signals.TASKS.values():
        texts += [signals.format_question(question, choices)] + [answer_text(c) for c in choices]
    tokenizer.train_from_iterator(texts * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD,
        extra_special_tokens={"audio_token": AUDIO, "audio_bos_token": AUDIO_BOS, "audio_eos_token": AUDIO_EOS},
    )


def make_processor(tokenizer):
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    features = WhisperFeatureExtractor(
        feature_size=MEL_BINS, sampling_rate=signals.SAMPLE_RATE, hop_length=160, chunk_length=WINDOW_SECONDS
    )
    tokenizer.padding_side = "left"
    return Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def build_model(tokenizer):
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    frames = WINDOW_SECONDS * signals.SAMPLE_RATE // 160
    pad_id = tokenizer.pad_token_id
    config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": MEL_BINS,
            "max_source_positions": frames // 2,
            **ENCODER,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "tie_word_embeddings": True,
            "bos_token_id": pad_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": pad_id,
            **TEXT,
        },
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO),
    )
    model = Qwen2AudioForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = pad_id
    return model


def noisy_answers(questions: list[signals.Question], label_noise: float, seed: int = SEED) -> list[str]:
    """Each question's answer, replaced with probability ``label_noise`` by an option drawn uniformly."""
    rng = np.random.default_rng(seed)
    flips = rng.random(len(questions)) < label_noise
    drawn = rng.integers(0, 1 << 30, len(questions))
    return [q.choices[k % len(q.choices)] if flip else q.answer for q, flip, k in zip(questions, flips, drawn)]


def supervised_data(
    processor, questions: list[signals.Question], answers: list[str] | None = None, chunk: int = 256
) -> dict[str, torch.Tensor]:
    """Inputs and labels of prompt + ``<answer>..</answer><|im_end|>`` for every question (``answers``: the
    targets, default the true ones), encoded once (right-padded; the loss is on the answer tokens only)."""
    tokenizer = processor.tokenizer
    answers = answers if answers is not None else [q.answer for q in questions]
    parts: list[dict[str, torch.Tensor]] = []
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    try:
        for start in range(0, len(questions), chunk):
            picked = questions[start : start + chunk]
            targets = [answer_text(answer) + IM_END for answer in answers[start : start + chunk]]
            batch = processor(
                text=[chat_prompt(processor, q.prompt) + target for q, target in zip(picked, targets)],
                audio=[q.audio for q in picked],
                sampling_rate=signals.SAMPLE_RATE,
                return_tensors="pt",
                padding=True,
            )
            width = TEXT["max_position_embeddings"] - batch["input_ids"].shape[1]  # one width for every chunk
            batch["input_ids"] = torch.nn.functional.pad(batch["input_ids"], (0, width), value=tokenizer.pad_token_id)
            batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, width), value=0)
            labels = torch.full_like(batch["input_ids"], -100)
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            for row, (length, target) in enumerate(zip(lengths, targets)):
                count = len(tokenizer(target, add_special_tokens=False)["input_ids"])
                labels[row, length - count : length] = batch["input_ids"][row, length - count : length]
            parts.append({**{key: batch[key] for key in MODEL_INPUTS}, "labels": labels})
    finally:
        tokenizer.padding_side = side
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def pretrain(model, data: dict[str, torch.Tensor], recipe: Recipe) -> float:
    """Supervised next-token training on the answers; returns the last batch's loss."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.pretrain_lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, recipe.pretrain_lr, total_steps=recipe.pretrain_steps, pct_start=0.1
    )
    progress = StepReporter(BUILDING, f"{MODEL_NAME} is built once: pre-training", recipe.pretrain_steps)
    rows = data["input_ids"].shape[0]
    model.train()
    loss = torch.tensor(float("nan"))
    for done in range(1, recipe.pretrain_steps + 1):
        picked = torch.randperm(rows, generator=generator)[: recipe.pretrain_batch]
        width = int(data["attention_mask"][picked].sum(dim=1).max())  # right padding: trim to the longest row
        batch = {key: value[picked] for key, value in data.items()}
        for key in ("input_ids", "attention_mask", "labels"):
            batch[key] = batch[key][:, :width]
        loss = model(**batch).loss
        pretrain_update(model, loss, optimizer, schedule)
        progress(done)
    model.eval()
    return float(loss.detach())


def build(folder: Path, recipe: Recipe) -> None:
    """Generate the clips, train tokenizer and model, write model + processor + info.json to ``folder``."""
    started = time.perf_counter()
    torch.manual_seed(SEED)
    report_phase(Phase(BUILDING, f"{MODEL_NAME} is built once: clips and tokenizer"))
    questions = signals.questions(range(recipe.pretrain_seeds))
    processor = make_processor(train_tokenizer(questions))
    model = build_model(processor.tokenizer)
    data = supervised_data(processor, questions, noisy_answers(questions, recipe.label_noise))
    final_loss = pretrain(model, data, recipe)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    info = {
        "version": CACHE_VERSION,
        "recipe": recipe.name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(processor.tokenizer),
        "pretrain_clips": len(questions),
        "pretrain_steps": recipe.pretrain_steps,
        "label_noise": recipe.label_noise,
        "final_loss": round(final_loss, 4),
        "build_seconds": round(time.perf_counter() - started, 1),
        "tasks": {task: question for task, (question, _) in signals.TASKS.items()},
    }
    (folder / "info.json").write_text(json.dumps(info, indent=2))
