"""``builtin:tiny-lm`` and its task ``builtin:tiny-lm-task``: a small causal LM the project builds itself.

The model is a 2-layer Qwen2 (hidden 128) built from a transformers config, with a byte-level BPE
tokenizer trained locally (the tokenizers library) on a corpus this module generates, then pre-trained
on that corpus for a fixed number of steps (~30-60 s on 2 busy cores). The result is cached in
``paths.builtin_models_dir() / CACHE_VERSION`` as an ordinary transformers folder (``config.json``,
``model.safetensors``, ``tokenizer.json``), so it goes through the same loader as any hub model.
Bump :data:`CACHE_VERSION` when the corpus, the architecture or the recipe changes.

The task: a prompt names a topic (``"list fruits:"``, ``"name some animals:"``, ...) and the model
answers with a comma-separated list ending in ``"."``. The reward (:func:`list_reward`) asks for
**long** on-topic lists: ``(distinct on-topic items - off-topic items) / TARGET_ITEMS``,
clipped to ``[0, 1]`` and halved if the list never ends. The pre-training corpus mostly holds short
lists (70% have 1-3 items, mean ~3.1, at most 10), so the pre-trained model starts low (~0.25-0.3)
and RL can raise the reward by writing longer lists while staying on topic and not repeating items.
Reward, KL and entropy pull apart here: longer lists take the policy away from its short reference
lists, and a small fixed beta lets it run to ``max_new_tokens`` (docs/llm.md has the measurements).
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
from .pretraining import pretrain_update

MODEL_NAME = "builtin:tiny-lm"
TASK_NAME = "builtin:tiny-lm-task"
CACHE_VERSION = "tiny-lm-v3"
EOS = "<|endoftext|>"
TARGET_ITEMS = 10  # a list this long (distinct, on topic) earns the full reward
UNFINISHED_FACTOR = 0.5  # a list cut off by max_new_tokens (no final '.') earns half

TOPICS: dict[str, list[str]] = {
    "fruits": [
        "apple",
        "pear",
        "plum",
        "grape",
        "lemon",
        "mango",
        "peach",
        "cherry",
        "melon",
        "kiwi",
        "lime",
        "banana",
    ],
    "animals": ["cat", "dog", "horse", "cow", "sheep", "goat", "lion", "tiger", "bear", "wolf", "fox", "mouse"],
    "colors": ["red", "blue", "green", "yellow", "black", "white", "pink", "brown", "purple", "orange", "gray", "gold"],
    "tools": ["hammer", "saw", "drill", "wrench", "knife", "axe", "rake", "shovel", "ruler", "chisel", "file", "clamp"],
    "metals": [
        "iron",
        "copper",
        "silver",
        "tin",
        "lead",
        "zinc",
        "nickel",
        "steel",
        "brass",
        "bronze",
        "chrome",
        "cobalt",
    ],
    "body parts": ["arm", "leg", "hand", "foot", "head", "neck", "knee", "elbow", "nose", "ear", "eye", "mouth"],
}
TEMPLATES = ["list {topic}:", "name some {topic}:", "{topic}:"]
# Length of the lists in the pre-training corpus: mostly short, rarely long (so RL has some variance).
LIST_LENGTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
LENGTH_WEIGHTS = [0.25, 0.25, 0.2, 0.1, 0.06, 0.05, 0.04, 0.03, 0.01, 0.01]

# Architecture and pre-training recipe (fixed step counts, so every machine builds the same model).
VOCAB_SIZE = 512
HIDDEN = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 256
MAX_POSITIONS = 128
CORPUS_LINES = 6000
PRETRAIN_STEPS = 400
PRETRAIN_BATCH = 48
PRETRAIN_LR = 3e-3
SEED = 0


# ----------------------------------------------------------------------------------------------
# The task: prompts and the rule reward


def task_rows() -> list[dict[str, str]]:
    """Every (template, topic) prompt with its ``topic`` column (the reward reads it)."""
    return [{"prompt": template.format(topic=topic), "topic": topic} for topic in TOPICS for template in TEMPLATES]


def topic_of(prompt: str) -> str | None:
    """The topic a task prompt names (longest match first, so 'body parts' wins over nothing)."""
    for topic in sorted(TOPICS, key=len, reverse=True):
        if topic in prompt.lower():
            return topic
    return None


def list_items(completion: str) -> tuple[list[str], bool]:
    """The items of a completion (text before the first '.', split at commas, stripped, lowercased) and
    whether the list was finished with a '.'."""
    text = completion.split(EOS)[0]
    body, dot, _ = text.partition(".")
    return [item.strip().lower() for item in body.split(",") if item.strip()], bool(dot)


def list_reward(completion: str, topic: str | None, target: int = TARGET_ITEMS) -> float:
    """``clip((distinct on-topic items - off-topic items) / target, 0, 1)``, halved for a list that never
    ends with '.'; 0 when the topic is unknown. A repeated item earns nothing."""
    if topic not in TOPICS:
        return 0.0
    allowed = set(TOPICS[topic])
    items, finished = list_items(completion)
    distinct = len({item for item in items if item in allowed})
    off_topic = sum(item not in allowed for item in items)
    score = min(1.0, max(0.0, (distinct - off_topic) / target))
    return float(score if finished else UNFINISHED_FACTOR * score)


# The deceptive variant (docs/results/deceptive_lm_design.md, fixed before any run): a common, easy
# 3-item list earns half, the valley of 4-7 items almost nothing, the rare 8+ list everything.
DECEPTIVE_REWARD = {3: 0.5, 4: 0.1, 5: 0.1, 6: 0.1, 7: 0.1}
DECEPTIVE_LONG = 8  # this many distinct on-topic items or more: the full reward


def deceptive_list_reward(completion: str, topic: str | None) -> float:
    """1 for a finished list of >= 8 distinct on-topic items, 0.5 for exactly 3, 0.1 for 4-7, and 0 for
    anything else (an off-topic or repeated item, no final '.', fewer than 3 items, unknown topic)."""
    if topic not in TOPICS:
        return 0.0
    items, finished = list_items(completion)
    allowed = set(TOPICS[topic])
    if not finished or any(item not in allowed for item in items) or len(set(items)) != len(items):
        return 0.0
    return 1.0 if len(items) >= DECEPTIVE_LONG else DECEPTIVE_REWARD.get(len(items), 0.0)


# ----------------------------------------------------------------------------------------------
# Corpus, tokenizer and model


def corpus_lines(count: int = CORPUS_LINES, seed: int = SEED) -> list[str]:
    """``count`` lines ``"<prompt> item, item, item.<eos>"`` with mostly short lists of distinct items."""
    rng = random.Random(seed)
    rows = task_rows()
    lines = []
    for _ in range(count):
        row = rng.choice(rows)
        length = rng.choices(LIST_LENGTHS, LENGTH_WEIGHTS)[0]
        items = rng.sample(TOPICS[row["topic"]], length)
        lines.append(f"{row['prompt']} {', '.join(items)}.{EOS}")
    return lines


def train_tokenizer(lines: list[str]):
    """A byte-level BPE tokenizer (vocab :data:`VOCAB_SIZE`) wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([line.removesuffix(EOS) for line in lines], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS)


def build_model(vocab_size: int, eos_id: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return Qwen2ForCausalLM(config)


def pretrain(model, tokenizer, lines: list[str], steps: int = PRETRAIN_STEPS, seed: int = SEED) -> float:
    """Next-token training on the corpus (padding masked out); returns the last batch's loss."""
    encoded = tokenizer(lines, padding=True, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    labels = ids.masked_fill(mask == 0, -100)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PRETRAIN_LR, total_steps=steps, pct_start=0.1)
    model.train()
    loss = torch.tensor(float("nan"))
    progress = StepReporter(BUILDING, "builtin:tiny-lm is built once: pre-training", steps)
    for done in range(1, steps + 1):
        batch = torch.randint(0, len(lines), (PRETRAIN_BATCH,), generator=generator)
        width = int(mask[batch].sum(dim=1).max())  # right padding: trim to the longest line of the batch
        loss = model(
            input_ids=ids[batch, :width], attention_mask=mask[batch, :width], labels=labels[batch, :width]
        ).loss
        pretrain_update(model, loss, optimizer, schedule)
        progress(done)
    model.eval()
    return float(loss.detach())


def cache_dir() -> Path:
    return builtin_models_dir() / CACHE_VERSION


def build(folder: Path) -> None:
    """Generate the corpus, train tokenizer and model, write them and ``info.json`` (last) to ``folder``."""
    started = time.perf_counter()
    torch.manual_seed(SEED)
    report_phase(Phase(BUILDING, "builtin:tiny-lm is built once: corpus and tokenizer"))
    lines = corpus_lines()
    tokenizer = train_tokenizer(lines)
    tokenizer.padding_side = "right"
    eos_id = tokenizer.eos_token_id
    if not isinstance(eos_id, int):
        raise RuntimeError(f"the trained tokenizer has no single id for {EOS}")
    model = build_model(len(tokenizer), eos_id)
    final_loss = pretrain(model, tokenizer, lines)
    model.save_pretrained(folder)
    tokenizer.padding_side = "left"  # generation pads prompts on the left
    tokenizer.save_pretrained(folder)
    info = {
        "version": CACHE_VERSION,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "corpus_lines": len(lines),
        "pretrain_steps": PRETRAIN_STEPS,
        "final_loss": round(final_loss, 4),
        "build_seconds": round(time.perf_counter() - started, 1),
        "task": "comma-separated lists of a topic's items; reward = long, distinct, on-topic lists",
    }
    (folder / "info.json").write_text(json.dumps(info, indent=2))


def tiny_lm_path() -> Path:
    """The cached model folder, built on first use."""
    return build_once(cache_dir(), build, marker="info.json")
