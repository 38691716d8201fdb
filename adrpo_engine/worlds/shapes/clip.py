"""``builtin:shapes-clip``: a small transformers ``CLIPModel`` trained contrastively on the shapes world.

- Tokenizer: CLIP's BPE format (``vocab.json`` + ``merges.txt``, loaded by ``CLIPTokenizer`` /
  ``AutoTokenizer``) whose merges spell every word of the world's grammar as one token (every byte
  stays in the vocabulary, so any text still tokenizes); ``model_max_length`` 16 (captions are <= 12
  tokens with the start and end tokens).
- Text tower: hidden 64, 2 layers, 4 heads, 16 positions; vision tower: 32x32 images, patch 4, hidden 64,
  2 layers; both projected to 64. Images are normalised with OpenAI CLIP's mean/std, written to
  ``preprocessor_config.json`` like a hub CLIP.
- Training: AdamW on the symmetric InfoNCE loss with learnable temperature, where every pair in the batch
  with the same caption counts as a positive (captions repeat: there are only a few hundred).

Saved with ``save_pretrained`` (model + tokenizer + image processor config) and loaded with
``CLIPModel.from_pretrained``/``AutoTokenizer.from_pretrained``: the same code as
``openai/clip-vit-large-patch14`` (``rewards.image.ClipEmbedder``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ...models.tiny_sd3 import _byte_characters
from . import data
from .recipe import Recipe

MAX_TOKENS = 16
TEXT_HIDDEN = 64
PROJECTION = 64
CLIP_LR = 2e-3
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
WORDS = sorted(
    set(data.COLOURS)
    | set(data.SHAPES)
    | {s + "s" for s in data.SHAPES}
    | set(data.NUMBERS)
    | {word for relation in data.RELATIONS for word in relation.split()}
    | {"and"}
)


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one word (symbols = characters, the last one word-final)."""
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def word_merges(words: list[str]) -> list[tuple[str, str]]:
    """Merges that make each word one token: for each word, merge the first two symbols that the current
    merges leave apart, until it is whole (a new merge never changes an earlier word: those are single
    symbols already)."""
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(symbols := _bpe(word, ranks)) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
    return merges


def write_tokenizer(directory: Path) -> Path:
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _byte_characters():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    merges = word_merges(WORDS)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    tokenizer = CLIPTokenizer.from_pretrained(str(directory), model_max_length=MAX_TOKENS)
    tokenizer.save_pretrained(str(directory))
    return directory


def load_tokenizer(directory: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(directory), model_max_length=MAX_TOKENS)


def text_config(vocab_size: int, eos_id: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=PROJECTION,
        bos_token_id=0,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def new_clip_model(tokenizer):
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    text = text_config(len(tokenizer), tokenizer.eos_token_id)
    vision = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=data.IMAGE_SIDE,
        patch_size=4,
        projection_dim=PROJECTION,
    )
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=PROJECTION))


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def contrastive_loss(
    model, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention: torch.Tensor, same: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE with every same-caption pair a positive (``same`` is the (B, B) 0/1 matrix)."""
    image = torch.nn.functional.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)
    text = model.get_text_features(input_ids=input_ids, attention_mask=attention).pooler_output
    text = torch.nn.functional.normalize(text, dim=-1)
    logits = model.logit_scale.exp().clamp(max=100.0) * image @ text.T
    targets = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (
        torch.sum(-targets * logits.log_softmax(dim=1), dim=1).mean()
        + torch.sum(-targets * logits.T.log_softmax(dim=1), dim=1).mean()
    )


def train_clip(tokenizer, recipe: Recipe, seed: int = 0, log=print):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, captions = data.generate(recipe.clip_images, seed=1000 + seed)
    pixels = normalise(images)
    unique = sorted(set(captions))
    caption_ids = torch.tensor([unique.index(c) for c in captions])
    tokens = tokenizer(unique, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    model = new_clip_model(tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=CLIP_LR, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, CLIP_LR, total_steps=recipe.clip_steps, pct_start=0.1)
    model.train()
    for step in range(recipe.clip_steps):
        index = torch.randint(0, len(captions), (recipe.clip_batch,), generator=generator)
        ids = caption_ids[index]
        same = (ids[:, None] == ids[None, :]).float()
        loss = contrastive_loss(model, pixels[index], tokens["input_ids"][ids], tokens["attention_mask"][ids], same)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == recipe.clip_steps - 1:
            log(f"shapes-clip step {step}/{recipe.clip_steps}: loss {loss.item():.3f}")
    return model.eval()


def build_shapes_clip(directory: Path, recipe: Recipe, seed: int = 0, log=print) -> Path:
    """Train and write the CLIP (model, tokenizer, image processor config, info.json) to ``directory``."""
    from transformers import CLIPImageProcessor

    started, cpu_started = time.perf_counter(), time.process_time()
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(write_tokenizer(directory))
    model = train_clip(tokenizer, recipe, seed, log)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    CLIPImageProcessor(
        size={"shortest_edge": data.IMAGE_SIDE},
        crop_size={"height": data.IMAGE_SIDE, "width": data.IMAGE_SIDE},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    ).save_pretrained(str(directory))
    info = {
        "recipe": recipe.name,
        "steps": recipe.clip_steps,
        "build_seconds": round(time.perf_counter() - started, 1),
        "build_cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    (directory / "info.json").write_text(json.dumps(info, indent=2))
    return directory
