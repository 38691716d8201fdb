"""Image rewards and diversity measures for flow-matching models.

Registered rewards (signature ``fn(images, prompts, **columns) -> list[float]``, images ``(B, C, H, W)``
floats in [0, 1]):

- ``clip_score``: ``scale * max(cos(CLIP image embedding, CLIP text embedding), 0)`` with a
  transformers ``CLIPModel`` by hub id or local path (the row's ``model``; ``scale`` defaults to 100,
  the usual CLIP-score scale on which SD3's base model scores ~29); ``builtin:tiny-clip`` and
  ``builtin:shapes-clip`` name the project's own.
- ``digits:even``: the built-in digit classifier's P(even digit) (``builtin:digits-flow`` images).
- ``digits:class``: its P(class k) (option ``k`` in 0..9).

Diversity (logged every step, computed per prompt group and averaged over groups):

- digits: ``diversity/class_entropy`` = entropy (nats) of the mean predicted-class distribution of a
  group (0 when collapsed onto one digit); ``diversity/even_spread`` = the same restricted to the five
  even digits and renormalised (ln 5 = 1.61 = even coverage); ``diversity/feature_dist`` = mean pairwise
  Euclidean distance of the classifier's 64-d features. ``diversity`` is the even spread when the job
  rewards ``digits:even`` (the task asks for even digits, so diversity is their spread), else the class entropy.
- text-to-image: ``diversity`` = mean pairwise distance of L2-normalised CLIP image embeddings (the
  paper's ClipDiversity), with the CLIP model of the job's ``clip_score`` reward (a built-in model may
  name its own measure in ``kinds``: ``builtin:shapes-sd3`` uses ``builtin:shapes-clip``); a job with neither
  uses the mean pairwise distance of 32x32 downscaled pixels (``diversity/pixel_dist``) as ``diversity``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch
from pydantic import Field
from torch import Tensor

from ..config import ConfigError, RewardSpec
from ..kinds import builtin_model, load_target, resolve_model_path
from . import RewardOptions, register_reward
from .clip_models import clip_setting, load_frozen_clip, normalised_features, reward_device

FEATURE_DIST = "diversity/feature_dist"
CLASS_ENTROPY = "diversity/class_entropy"
EVEN_SPREAD = "diversity/even_spread"
PIXEL_DIST = "diversity/pixel_dist"

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _check_images(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"image rewards take a (B, C, H, W) tensor in [0, 1], got {shape}")
    return images


# ----------------------------------------------------------------------------------------------
# The digit classifier


@register_reward(
    "digits:even", "image", "Built-in digit classifier: P(even digit) of builtin:digits-flow images.", needs="builtin"
)
def digits_even() -> Callable[..., list[float]]:
    from ..models.digits_pretrain import digit_classifier

    classifier = digit_classifier()

    def reward(images: Tensor, prompts: Sequence[str], **_: object) -> list[float]:
        with torch.no_grad():
            probabilities = classifier.probabilities(_check_images(images).cpu())
        return probabilities[:, 0::2].sum(dim=1).tolist()

    return reward


class DigitsClassOptions(RewardOptions):
    k: int = Field(default=0, ge=0, le=9, strict=True, description="The digit class whose probability is the reward.")


@register_reward(
    "digits:class",
    "image",
    "Built-in digit classifier: P(class k) of builtin:digits-flow images.",
    needs="builtin",
    options=DigitsClassOptions,
)
def digits_class(k: int = 0) -> Callable[..., list[float]]:
    from ..models.digits_pretrain import digit_classifier

    classifier = digit_classifier()

    def reward(images: Tensor, prompts: Sequence[str], **_: object) -> list[float]:
        with torch.no_grad():
            probabilities = classifier.probabilities(_check_images(images).cpu())
        return probabilities[:, k].tolist()

    return reward


def digits_diversity_measure(rewards: Sequence[RewardSpec]) -> Callable[[Tensor, int], dict[str, float]]:
    """The diversity of ``builtin:digits-flow`` jobs (``kinds`` names it): the even-digit spread for a job
    that rewards ``digits:even``, the class entropy otherwise."""
    even_task = any(spec.name == "digits:even" for spec in rewards)
    return lambda images, group_size: digits_diversity(images, group_size, even_task)


def digits_diversity(images: Tensor, group_size: int, even_task: bool = False) -> dict[str, float]:
    """Per group of ``group_size``, averaged: class entropy, even-digit spread and feature distance.

    ``diversity`` is the even-digit spread for the digits-even task (where the 10-class entropy mostly
    tracks the reward: it falls as odd digits vanish) and the 10-class entropy otherwise.
    """
    from ..diversity import class_entropy, even_spread, mean_pairwise_distance
    from ..models.digits_pretrain import digit_classifier

    classifier = digit_classifier()
    with torch.no_grad():
        features = classifier.features(images.cpu())
        probabilities = torch.softmax(classifier.head(features), dim=-1)
    entropies, spreads, distances = [], [], []
    for start in range(0, images.shape[0], group_size):
        entropies.append(class_entropy(probabilities[start : start + group_size]))
        spreads.append(even_spread(probabilities[start : start + group_size]))
        distances.append(mean_pairwise_distance(features[start : start + group_size]))
    measures = {
        CLASS_ENTROPY: sum(entropies) / len(entropies),
        EVEN_SPREAD: sum(spreads) / len(spreads),
        FEATURE_DIST: sum(distances) / len(distances),
    }
    return {"diversity": measures[EVEN_SPREAD if even_task else CLASS_ENTROPY], **measures}


# ----------------------------------------------------------------------------------------------
# CLIP


class ClipEmbedder:
    """A CLIPModel + tokenizer by hub id or local path; embeds images (tensors in [0, 1]) and texts."""

    def __init__(self, model: str, device: str | None = None) -> None:
        from transformers import AutoTokenizer

        self.device = reward_device(device)
        self.model = load_frozen_clip(model, self.device, "CLIP model")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
        except OSError as error:
            raise ConfigError(f"rewards: cannot load CLIP model {model!r}: {error}") from None
        self.image_size = clip_setting(self.model, "vision_config.image_size")
        self.mean, self.std = _clip_normalisation(model)

    def _pixel_values(self, images: Tensor) -> Tensor:
        images = _check_images(images).float().to(self.device)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        # CLIP's processor resizes the short side and centre-crops; our images are square, so a resize is that.
        images = torch.nn.functional.interpolate(
            images, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False, antialias=True
        ).clamp(0.0, 1.0)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return (images - mean) / std

    @torch.no_grad()
    def image_embeddings(self, images: Tensor) -> Tensor:
        return normalised_features(self.model.get_image_features(pixel_values=self._pixel_values(images)))

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=clip_setting(self.model, "text_config.max_position_embeddings"),
            return_tensors="pt",
        ).to(self.device)
        return normalised_features(
            self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        )


def _clip_normalisation(model: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The image mean/std of the model's preprocessor config, else OpenAI CLIP's."""
    import json

    config = Path(model) / "preprocessor_config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        return tuple(data.get("image_mean", OPENAI_CLIP_MEAN)), tuple(data.get("image_std", OPENAI_CLIP_STD))
    return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


@lru_cache(maxsize=4)
def clip_embedder(model: str) -> ClipEmbedder:
    """One CLIP per model id per process (the reward and the diversity measure share it)."""
    return ClipEmbedder(resolve_model_path(model))


class ClipScoreOptions(RewardOptions):
    scale: float = Field(
        default=100.0, gt=0.0, le=1000.0, description="Multiplier of the cosine (100 = the usual CLIP score)."
    )


@register_reward(
    "clip_score",
    "image",
    "CLIP score: scale * cos(image, prompt) with a CLIPModel.",
    needs="clip_model",
    options=ClipScoreOptions,
    default_model="openai/clip-vit-large-patch14",
)
def clip_score(model: str = "openai/clip-vit-large-patch14", scale: float = 100.0) -> Callable[..., list[float]]:
    embedder = clip_embedder(model)

    def reward(images: Tensor, prompts: Sequence[str], **_: object) -> list[float]:
        if len(prompts) != images.shape[0]:
            raise ValueError(f"clip_score: {images.shape[0]} images but {len(prompts)} prompts")
        cosine = (embedder.image_embeddings(images) * embedder.text_embeddings(prompts)).sum(dim=-1)
        return (scale * cosine.clamp_min(0.0)).cpu().tolist()

    return reward


def clip_diversity(embedder: ClipEmbedder, images: Tensor, group_size: int) -> float:
    """Mean pairwise distance of normalised CLIP image embeddings within each group, averaged."""
    from ..diversity import mean_pairwise_distance

    embeds = embedder.image_embeddings(images)
    values = [mean_pairwise_distance(embeds[s : s + group_size]) for s in range(0, images.shape[0], group_size)]
    return sum(values) / len(values)


def pixel_diversity(images: Tensor, group_size: int) -> float:
    from ..diversity import mean_pairwise_distance

    small = torch.nn.functional.interpolate(images.float(), size=(32, 32), mode="area").flatten(1).cpu()
    values = [mean_pairwise_distance(small[s : s + group_size]) for s in range(0, images.shape[0], group_size)]
    return sum(values) / len(values)


def build_diversity(model_name: str, rewards: Sequence[RewardSpec]) -> Callable[[Tensor, int], dict[str, float]]:
    """The per-step diversity measure of a job: see the module docstring for which one is used."""
    model = builtin_model(model_name)
    if model is not None and model.diversity is not None:
        return load_target(model.diversity)(rewards)
    clip_specs = [spec for spec in rewards if spec.name == "clip_score"]
    if clip_specs:
        embedder = clip_embedder(clip_specs[0].model or "openai/clip-vit-large-patch14")
        return lambda images, group_size: {"diversity": clip_diversity(embedder, images, group_size)}

    def by_pixels(images: Tensor, group_size: int) -> dict[str, float]:
        value = pixel_diversity(images, group_size)
        return {"diversity": value, PIXEL_DIST: value}

    return by_pixels
