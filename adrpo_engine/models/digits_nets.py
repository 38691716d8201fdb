"""The two networks of the digits world: a class-conditional flow-matching MLP and a digit classifier.

Time convention (as everywhere in the engine, see ``objectives``): ``x_t = (1 - t) * x_data + t * noise``,
velocity target ``noise - x_data``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .digits_data import DATA_DIM, IMAGE_SIDE, NUM_CLASSES


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of ``t`` in [0, 1] (frequencies 1..1000, as for diffusion timesteps)."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, device=t.device))
    angles = t.float().unsqueeze(1) * freqs.unsqueeze(0) * math.pi
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class DigitsFlowNet(nn.Module):
    """Velocity field ``v(x_t, t, class)`` on 64-pixel digits: an MLP on [x_t, emb(t), emb(class)]."""

    def __init__(self, hidden: int = 256, embed: int = 64) -> None:
        super().__init__()
        self.embed = embed
        self.class_embedding = nn.Embedding(NUM_CLASSES + 1, embed)
        self.inp = nn.Linear(DATA_DIM + 2 * embed, hidden)
        self.hid1 = nn.Linear(hidden, hidden)
        self.hid2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, DATA_DIM)
        self.act = nn.SiLU()

    def forward(self, x_t: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        features = torch.cat([x_t, time_embedding(t, self.embed), self.class_embedding(labels)], dim=1)
        h = self.act(self.inp(features))
        h = h + self.act(self.hid1(h))
        h = h + self.act(self.hid2(h))
        return self.out(h)


class DigitClassifier(nn.Module):
    """A small MLP on ``(B, 1, 8, 8)`` images in [0, 1]: ``features`` (64-d) and class ``probabilities``."""

    def __init__(self, hidden: int = 128, feature_dim: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(DATA_DIM, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim), nn.ReLU()
        )
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features(self, images: Tensor) -> Tensor:
        return self.body(_as_digit_pixels(images))

    def logits(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    def probabilities(self, images: Tensor) -> Tensor:
        return torch.softmax(self.logits(images), dim=-1)


def _as_digit_pixels(images: Tensor) -> Tensor:
    """Accept ``(B, 64)`` or ``(B, C, H, W)`` images in [0, 1]: grey, resized to 8x8, flattened."""
    if images.dim() == 2 and images.shape[1] == DATA_DIM:
        return images.float()
    if images.dim() != 4:
        raise ValueError(f"digit images must be (B, C, H, W) in [0, 1], got shape {tuple(images.shape)}")
    grey = images.float().mean(dim=1, keepdim=True)
    if grey.shape[-2:] != (IMAGE_SIDE, IMAGE_SIDE):
        grey = nn.functional.interpolate(grey, size=(IMAGE_SIDE, IMAGE_SIDE), mode="area")
    return grey.flatten(1)
