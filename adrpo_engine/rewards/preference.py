"""The standard text-to-image preference rewards of the flow-RL literature (flow_grpo, DDPO, Flow-Factory).

Signature ``fn(images, prompts, **columns) -> list[float]``, images ``(B, C, H, W)`` floats in [0, 1].
Each loads by hub id or local path:

- ``pickscore``: PickScore (a CLIP-H preference model, ``yuvalkirstain/PickScore_v1``) with its processor
  (``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``): ``logit_scale.exp() * cos(image, prompt)`` (~20-23 for
  SD3 images; flow_grpo divides it by 26, option ``scale``).
- ``aesthetic``: LAION's improved aesthetic predictor: an MLP head on the L2-normalised CLIP ViT-L/14
  image embedding (the head TRL's DDPO example uses, ``trl-lib/ddpo-aesthetic-predictor``), ~1-10.
- ``hpsv2``: HPS v2 / v2.1 (an OpenCLIP ViT-H-14 fine-tuned on human preferences): ``cos(image, prompt)``
  (~0.25-0.30). Needs ``open_clip_torch`` (the optional extra ``hpsv2``; it pulls in torchvision).

ImageReward is not here: its package (image-reward 1.5) pins timm 0.6.13 and fairscale 0.4.13 and its
BLIP code imports helpers transformers 5 removed, so it cannot load beside this engine. Serve it from
its own environment and use it as a remote reward (``remote:http://host:port/path``, docs/rewards.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch
from pydantic import Field
from torch import Tensor

from ..config import ConfigError
from . import RewardOptions, register_reward
from .clip_models import clip_setting, freeze_on, load_frozen_clip, normalised_features, reward_device

PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
AESTHETIC_CLIP = "openai/clip-vit-large-patch14"
AESTHETIC_HEAD = "trl-lib/ddpo-aesthetic-predictor/aesthetic-model.pth"
HPSV2_CHECKPOINT = "xswu/HPSv2/HPS_v2.1_compressed.pt"
HPSV2_ARCHITECTURE = "ViT-H-14"


def to_pil(images: Tensor) -> list:
    """``(B, C, H, W)`` floats in [0, 1] as RGB PIL images (what the models' processors expect)."""
    from PIL import Image

    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"image rewards take a (B, C, H, W) tensor in [0, 1], got {getattr(images, 'shape', images)}")
    pixels = (images.detach().float().clamp(0, 1) * 255).round().byte().cpu()
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    return [Image.fromarray(image[:3].permute(1, 2, 0).numpy()) for image in pixels]


def hub_file(spec: str, option: str) -> Path:
    """A local file, or ``org/repo/path/in/repo`` downloaded (cached) from the hub."""
    if os.path.isfile(spec):
        return Path(spec)
    parts = spec.split("/")
    if len(parts) < 3:
        raise ConfigError(f"rewards: option {option} must be a local file or 'org/repo/filename' (got {spec!r})")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:])))
    except Exception as error:  # noqa: BLE001 - offline, missing file, no access: one readable line
        raise ConfigError(f"rewards: cannot load {option} {spec!r}: {type(error).__name__}: {error}") from None


# ----------------------------------------------------------------------------------------------
# PickScore


class PickScorer:
    """A CLIPModel preference model with its processor (PickScore's recipe)."""

    def __init__(self, model: str, processor: str | None, device: str | None = None) -> None:
        from transformers import AutoProcessor

        self.device = reward_device(device)
        self.model = load_frozen_clip(model, self.device, "the PickScore model")
        try:
            self.processor = AutoProcessor.from_pretrained(processor or model)
        except OSError as error:
            raise ConfigError(f"rewards: cannot load the processor {processor or model!r}: {error}") from None
        self.max_length = clip_setting(self.model, "text_config.max_position_embeddings")

    @torch.no_grad()
    def __call__(self, images: Tensor, prompts: Sequence[str]) -> Tensor:
        pixel = self.processor(images=to_pil(images), return_tensors="pt")["pixel_values"].to(self.device)
        text = self.processor(
            text=list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        image_embeds = normalised_features(self.model.get_image_features(pixel_values=pixel))
        text_embeds = normalised_features(
            self.model.get_text_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        )
        return self.model.logit_scale.exp().float() * (image_embeds * text_embeds).sum(dim=-1)


@lru_cache(maxsize=2)
def pick_scorer(model: str, processor: str | None, device: str | None) -> PickScorer:
    return PickScorer(model, processor, device)


def _paired(images: Tensor, prompts: Sequence[str], name: str) -> None:
    if len(prompts) != images.shape[0]:
        raise ValueError(f"{name}: {images.shape[0]} images but {len(prompts)} prompts")


_DEVICE_HELP = "Where the scorer runs (cpu, cuda, cuda:1; empty: CUDA when present, else CPU)."
_DEVICE_PATTERN = r"^(cpu|cuda|cuda:[0-9]{1,2}|mps)$"


class PickScoreOptions(RewardOptions):
    processor: str | None = Field(
        default=PICKSCORE_PROCESSOR,
        min_length=1,
        max_length=512,
        description="The CLIP processor (hub id or local path); empty: the model's own folder.",
    )
    scale: float = Field(default=1.0, gt=0.0, le=1000.0, description="Multiplier of the score (flow_grpo uses 1/26).")
    device: str | None = Field(default=None, pattern=_DEVICE_PATTERN, description=_DEVICE_HELP)


@register_reward(
    "pickscore",
    "image",
    "PickScore: a CLIP preference model's logit_scale * cos(image, prompt).",
    needs="clip_model",
    options=PickScoreOptions,
    default_model=PICKSCORE_MODEL,
    models=(PICKSCORE_MODEL,),
)
def pickscore(
    model: str = PICKSCORE_MODEL,
    processor: str | None = PICKSCORE_PROCESSOR,
    scale: float = 1.0,
    device: str | None = None,
) -> Callable[..., list[float]]:
    """``processor`` None = the model's own folder/repo (a local PickScore copy saved with its processor)."""
    scorer = pick_scorer(model, processor, device)

    def reward(images: Tensor, prompts: Sequence[str], **_: object) -> list[float]:
        _paired(images, prompts, "pickscore")
        return (scale * scorer(images, prompts)).cpu().tolist()

    return reward


# ----------------------------------------------------------------------------------------------
# LAION aesthetic predictor (CLIP image embedding + MLP head)


class AestheticHead(torch.nn.Module):
    """The improved-aesthetic-predictor MLP; layer names match its published state dicts (layers.0 ... 7)."""

    def __init__(self, width: int = 768) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(width, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, embeds: Tensor) -> Tensor:
        return self.layers(embeds).squeeze(-1)


def load_state(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class AestheticScorer:
    def __init__(self, clip: str, head: str, device: str | None = None) -> None:
        from transformers import AutoProcessor

        self.device = reward_device(device)
        self.clip = load_frozen_clip(clip, self.device, "the aesthetic predictor's CLIP")
        try:
            self.processor = AutoProcessor.from_pretrained(clip)
        except OSError as error:
            raise ConfigError(f"rewards: cannot load the aesthetic predictor's CLIP {clip!r}: {error}") from None
        self.head = AestheticHead(clip_setting(self.clip, "projection_dim"))
        try:
            self.head.load_state_dict(load_state(hub_file(head, "head")))
        except RuntimeError as error:  # wrong shapes or keys: a head for another CLIP
            raise ConfigError(
                f"rewards: the aesthetic head {head!r} does not fit CLIP {clip!r}: {str(error).splitlines()[0]}"
            ) from None
        freeze_on(self.head, self.device)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        pixel = self.processor(images=to_pil(images), return_tensors="pt")["pixel_values"].to(self.device)
        return self.head(normalised_features(self.clip.get_image_features(pixel_values=pixel)))


@lru_cache(maxsize=2)
def aesthetic_scorer(clip: str, head: str, device: str | None) -> AestheticScorer:
    return AestheticScorer(clip, head, device)


class AestheticOptions(RewardOptions):
    head: str = Field(
        default=AESTHETIC_HEAD,
        min_length=1,
        max_length=512,
        description="The MLP head: a local .pth/.safetensors state dict, or 'org/repo/filename' on the hub.",
    )
    device: str | None = Field(default=None, pattern=_DEVICE_PATTERN, description=_DEVICE_HELP)


@register_reward(
    "aesthetic",
    "image",
    "LAION aesthetic predictor: an MLP head on CLIP ViT-L/14 image embeddings (~1-10).",
    needs="clip_model",
    options=AestheticOptions,
    default_model=AESTHETIC_CLIP,
    model_option="clip",
    models=(AESTHETIC_CLIP,),
)
def aesthetic(
    clip: str = AESTHETIC_CLIP, head: str = AESTHETIC_HEAD, device: str | None = None
) -> Callable[..., list[float]]:
    """``head``: a local .pth/.safetensors state dict, or 'org/repo/filename' on the hub."""
    scorer = aesthetic_scorer(clip, head, device)

    def reward(images: Tensor, prompts: Sequence[str], **_: object) -> list[float]:
        return scorer(images).cpu().tolist()

    return reward


# ----------------------------------------------------------------------------------------------
# HPS v2 (OpenCLIP)


class HPSv2Scorer:
    def __init__(self, checkpoint: str, architecture: str, device: str | None = None) -> None:
        try:
            import open_clip  # pyright: ignore[reportMissingImports] (the optional hpsv2 extra)
        except ImportError:
            raise ConfigError(
                "rewards: hpsv2 needs open_clip_torch (pip install 'adrpo-studio[hpsv2]'; it installs torchvision too)"
            ) from None
        self.device = reward_device(device)
        try:
            model, _, self.preprocess = open_clip.create_model_and_transforms(architecture, pretrained=None)
        except RuntimeError as error:
            raise ConfigError(f"rewards: hpsv2 option architecture: {error}") from None
        try:
            model.load_state_dict(load_state(hub_file(checkpoint, "checkpoint")))
        except RuntimeError as error:
            raise ConfigError(
                f"rewards: the HPSv2 checkpoint {checkpoint!r} does not fit {architecture}: "
                f"{str(error).splitlines()[0]}"
            ) from None
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(architecture)

    @torch.no_grad()
    def __call__(self, images: Tensor, prompts: Sequence[str]) -> Tensor:
        pixel = torch.stack([self.preprocess(image) for image in to_pil(images)]).to(self.device)
        image_embeds = torch.nn.functional.normalize(self.model.encode_image(pixel).float(), dim=-1)
        text_embeds = torch.nn.functional.normalize(
            self.model.encode_text(self.tokenizer(list(prompts)).to(self.device)).float(), dim=-1
        )
        return (image_embeds * text_embeds).sum(dim=-1)


@lru_cache(maxsize=2)
def hpsv2_scorer(checkpoint: str, architecture: str, device: str | None) -> HPSv2Scorer:
    return HPSv2Scorer(checkpoint, architecture, device)


class HPSv2Options(RewardOptions):
    architecture: str = Field(
        default=HPSV2_ARCHITECTURE,
        min_length=1,
        max_length=64,
        description="The OpenCLIP architecture of the checkpoint.",
    )
    device: str | None = Field(default=None, pattern=_DEVICE_PATTERN, description=_DEVICE_HELP)


@register_reward(
    "hpsv2",
    "image",
    "HPS v2.1: OpenCLIP ViT-H-14 preference model, cos(image, prompt) (extra 'hpsv2').",
    needs="clip_model",
    options=HPSv2Options,
    default_model=HPSV2_CHECKPOINT,
    model_option="checkpoint",
    models=(HPSV2_CHECKPOINT, "xswu/HPSv2/HPS_v2_compressed.pt"),
    checks_architecture=False,  # an OpenCLIP state dict, not a transformers folder
)
def hpsv2(
    checkpoint: str = HPSV2_CHECKPOINT, architecture: str = HPSV2_ARCHITECTURE, device: str | None = None
) -> Callable[..., list[float]]:
    """``checkpoint``: a local .pt state dict (HPS_v2_compressed.pt / HPS_v2.1_compressed.pt) or 'org/repo/file'."""
    scorer = hpsv2_scorer(checkpoint, architecture, device)

    def reward(images: Tensor, prompts: Sequence[str], **_: object) -> list[float]:
        _paired(images, prompts, "hpsv2")
        return scorer(images, prompts).cpu().tolist()

    return reward
