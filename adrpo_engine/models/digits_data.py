"""The data of the built-in digits world: scikit-learn's bundled 8x8 handwritten digits (``load_digits``:
1797 images, no download) and the two spaces they live in.

Data space: an image is 64 pixel values in ``[-1, 1]`` (``x = 2 * pixel / 16 - 1``); images for
rewards are ``(B, 1, 8, 8)`` in ``[0, 1]``. Classes 0..9 are the digits; class 10 is the null class
("any digit": unconditional, and the unconditional branch of classifier-free guidance).
"""

from __future__ import annotations

import torch
from torch import Tensor

NUM_CLASSES = 10
NULL_CLASS = NUM_CLASSES  # index of the "any digit" embedding
IMAGE_SIDE = 8
DATA_DIM = IMAGE_SIDE * IMAGE_SIDE


def load_digit_data() -> tuple[Tensor, Tensor]:
    """All 1797 digits as ``(N, 64)`` floats in ``[0, 1]`` and their labels ``(N,)``."""
    from sklearn.datasets import load_digits

    pixels, targets = load_digits(return_X_y=True)
    images = torch.tensor(pixels, dtype=torch.float32) / 16.0
    labels = torch.tensor(targets, dtype=torch.long)
    return images, labels


def to_model_space(images01: Tensor) -> Tensor:
    return images01 * 2.0 - 1.0


def to_images(x: Tensor) -> Tensor:
    """Model-space samples ``(B, 64)`` -> images ``(B, 1, 8, 8)`` in ``[0, 1]``."""
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0).view(-1, 1, IMAGE_SIDE, IMAGE_SIDE)
