"""``builtin:tiny-lm-rm``: a small reward model for the tiny-lm world, trained here on the task's known truth.

A 2-layer ``Qwen2ForSequenceClassification`` with one label, sharing ``builtin:tiny-lm``'s tokenizer,
regresses :func:`adrpo_engine.models.tiny_lm.list_reward` on generated completions of the task's
prompts: lists of 0-12 items, some off topic, some repeated, some unfinished. It is the LLM world's
"reward model" (loaded by the ``reward_model`` reward through ``AutoModelForSequenceClassification``,
like any hub reward model) whose agreement with the rule reward is measured at build time and stored in
``info.json`` (``heldout_pearson``). Fixed step counts, so every machine builds the same model; cached in
``paths.builtin_models_dir() / CACHE_VERSION``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch

from ..builds import build_once
from ..paths import builtin_models_dir
from ..progress import BUILDING, Phase, StepReporter, report_phase
from . import tiny_lm
from .pretraining import pretrain_update

MODEL_NAME = "builtin:tiny-lm-rm"
CACHE_VERSION = "tiny-lm-rm-v2"
EXAMPLES = 12000  # 3000 gave a held-out Pearson of 0.66, 12000 0.74 (600 steps instead of 300: 0.75)
HELDOUT = 300
STEPS = 300
BATCH = 64
LR = 3e-3
SEED = 0
HIDDEN = 64
LAYERS = 2


def completion(rng: random.Random, topic: str) -> str:
    """A list answer of the task with the flaws RL meets: off-topic items, repeats, no final '.'."""
    others = [item for name, items in tiny_lm.TOPICS.items() if name != topic for item in items]
    items = []
    for _ in range(rng.randint(0, 12)):
        roll = rng.random()
        if roll < 0.15:
            items.append(rng.choice(others))
        elif roll < 0.25 and items:
            items.append(rng.choice(items))
        else:
            items.append(rng.choice(tiny_lm.TOPICS[topic]))
    return " " + ", ".join(items) + ("." if rng.random() < 0.8 else "")


def examples(count: int, seed: int) -> tuple[list[str], list[float]]:
    rng = random.Random(seed)
    rows = tiny_lm.task_rows()
    texts, targets = [], []
    for _ in range(count):
        row = rng.choice(rows)
        answer = completion(rng, row["topic"])
        texts.append(row["prompt"] + answer)
        targets.append(tiny_lm.list_reward(answer, row["topic"]))
    return texts, targets


def build_model(vocab_size: int, pad_id: int):
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=tiny_lm.MAX_POSITIONS,
        num_labels=1,  # pyright: ignore[reportCallIssue] (a PretrainedConfig keyword, not in Qwen2Config's signature)
        pad_token_id=pad_id,
        bos_token_id=pad_id,
        eos_token_id=pad_id,
    )
    return Qwen2ForSequenceClassification(config)


def _scores(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    return model(**batch).logits[:, 0]


def train(model, tokenizer, texts: list[str], targets: list[float]) -> float:
    """MSE regression of the rule reward; returns the last batch's loss."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=STEPS, pct_start=0.1)
    target = torch.tensor(targets)
    model.train()
    loss = torch.tensor(float("nan"))
    progress = StepReporter(BUILDING, f"{MODEL_NAME} is built once: training", STEPS)
    for done in range(1, STEPS + 1):
        index = torch.randint(0, len(texts), (BATCH,), generator=generator)
        loss = torch.nn.functional.mse_loss(_scores(model, tokenizer, [texts[i] for i in index]), target[index])
        pretrain_update(model, loss, optimizer, schedule)
        progress(done)
    model.eval()
    return float(loss.detach())


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-12))


def cache_dir() -> Path:
    return builtin_models_dir() / CACHE_VERSION


def build(folder: Path) -> None:
    """Generate the examples, train the reward model on them, write it and ``info.json`` (last) to ``folder``."""
    from transformers import PreTrainedTokenizerFast

    started = time.perf_counter()
    torch.manual_seed(SEED)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tiny_lm.tiny_lm_path()))
    report_phase(Phase(BUILDING, f"{MODEL_NAME} is built once: examples"))
    tokenizer.padding_side = "right"
    texts, targets = examples(EXAMPLES + HELDOUT, SEED)
    model = build_model(len(tokenizer), tokenizer.pad_token_id)
    final_loss = train(model, tokenizer, texts[:EXAMPLES], targets[:EXAMPLES])
    with torch.no_grad():
        heldout = _scores(model, tokenizer, texts[EXAMPLES:])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    info = {
        "version": CACHE_VERSION,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_examples": EXAMPLES,
        "steps": STEPS,
        "final_loss": round(final_loss, 4),
        "heldout_pearson": round(pearson(heldout, torch.tensor(targets[EXAMPLES:])), 4),
        "build_seconds": round(time.perf_counter() - started, 1),
        "task": "regresses builtin:tiny-lm-task's list reward from prompt + completion",
    }
    (folder / "info.json").write_text(json.dumps(info, indent=2))


def tiny_lm_rm_path() -> Path:
    """The cached model folder, built on first use."""
    return build_once(cache_dir(), build, marker="info.json")
