"""``builtin:tiny-sd3`` and ``builtin:tiny-clip``: randomly initialised, architecture-true miniatures of a
Stable Diffusion 3 pipeline and of a CLIP model, built from configs (no download) for tests, benchmarks
and trying the T2I code path on a CPU. They draw noise-like images: they exercise the code, not art.

Recipe (the smallest configuration found to run diffusers 0.42's pipeline end to end): SD3 transformer with patch 1, 4 latent channels, 1 layer, 4 heads of dim 8,
caption projection 32, pooled projection 64 (= the two CLIP projection dims), joint_attention_dim 64
(= 2 x CLIP hidden size: SD3 concatenates the two CLIP hidden states along features; a smaller value
silently truncates them); a 2-block AutoencoderKL (scale factor 2, so 16x16 latents = 32x32 images);
two CLIPTextModelWithProjection of hidden size 32; no T5 (``text_encoder_3=None``). The CLIP tokenizer
is a character-level BPE written as ``vocab.json`` + ``merges.txt`` and loaded with
``CLIPTokenizer.from_pretrained(dir)`` (in transformers 5 the ``vocab_file=`` constructor yields a
vocabulary of 2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..builds import build_once
from ..paths import builtin_models_dir

TINY_SD3 = "tiny-sd3-v1"
TINY_CLIP = "tiny-clip-v1"
CLIP_HIDDEN = 32
MAX_TOKENS = 77


def _byte_characters() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2's ``bytes_to_unicode``)."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = keep[:]
    extra = 0
    for byte in range(256):
        if byte not in keep:
            keep.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def write_clip_tokenizer(directory: Path) -> Path:
    """A character-level CLIP BPE vocabulary (every byte, alone and word-final) and a few merges."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _byte_characters():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    merges = ["t h", "th e</w>", "a n", "an d</w>", "o f</w>", "i n", "o n</w>"]
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return directory


def load_clip_tokenizer(directory: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(directory), model_max_length=MAX_TOKENS)


def tiny_text_config(vocab_size: int, eos_id: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=CLIP_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=32,
        bos_token_id=0,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def build_tiny_sd3(directory: Path, seed: int = 0) -> Path:
    """Write a tiny ``StableDiffusion3Pipeline`` to ``directory`` (``save_pretrained`` layout)."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tokenizer = load_clip_tokenizer(write_clip_tokenizer(directory / "_tokenizer"))
    text_config = tiny_text_config(len(tokenizer), tokenizer.eos_token_id)
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=2 * CLIP_HIDDEN,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
        pos_embed_max_size=32,
    )
    # As a config mapping: diffusers annotates the per-block tuples as one-element tuple[int].
    vae_config: dict[str, Any] = {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "block_out_channels": (8, 16),
        "layers_per_block": 1,
        "down_block_types": ("DownEncoderBlock2D",) * 2,
        "up_block_types": ("UpDecoderBlock2D",) * 2,
        "norm_num_groups": 8,
        "sample_size": 32,
        "scaling_factor": 1.0,
        "shift_factor": 0.0,
    }
    vae = AutoencoderKL(**vae_config)
    pipeline = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer_2=tokenizer,
        text_encoder_3=None,  # pyright: ignore[reportArgumentType] (SD3 runs without T5; diffusers allows None)
        tokenizer_3=None,
    )
    pipeline.save_pretrained(str(directory))
    shutil.rmtree(directory / "_tokenizer", ignore_errors=True)
    return directory


def build_tiny_clip(directory: Path, seed: int = 0) -> Path:
    """Write a tiny ``CLIPModel`` (32x32 images, patch 8) with its tokenizer to ``directory``."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    torch.manual_seed(seed)
    tokenizer = load_clip_tokenizer(write_clip_tokenizer(directory))
    text = tiny_text_config(len(tokenizer), tokenizer.eos_token_id)
    vision = CLIPVisionConfig(
        hidden_size=CLIP_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=32))
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def tiny_sd3_path() -> Path:
    return build_once(builtin_models_dir() / TINY_SD3, build_tiny_sd3)


def tiny_clip_path() -> Path:
    return build_once(builtin_models_dir() / TINY_CLIP, build_tiny_clip)
