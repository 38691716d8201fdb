"""Diversity maths on a set of samples: entropy of predicted classes and mean pairwise distances.

Pure tensor functions (no model here); ``rewards.image`` applies them to a classifier's outputs or to
CLIP embeddings, per prompt group.
"""

from __future__ import annotations

import torch
from torch import Tensor


def class_entropy(probabilities: Tensor) -> float:
    """Entropy (nats) of the mean predicted-class distribution of a set of samples: ln 10 = uniform over
    all digits, ln 5 = uniform over the five even ones, 0 = all samples read as one digit (collapse)."""
    mean = probabilities.float().mean(dim=0).clamp_min(1e-12)
    return float(-(mean * mean.log()).sum().detach())


EVEN_CLASSES = (0, 2, 4, 6, 8)


def even_spread(probabilities: Tensor) -> float:
    """Entropy (nats) of the predicted distribution restricted to the even digits and renormalised:
    ln 5 = 1.61 when a set of samples covers the five even digits evenly, 0 when it collapses onto one."""
    even = probabilities[:, list(EVEN_CLASSES)].float()
    return class_entropy(even / even.sum(dim=1, keepdim=True).clamp_min(1e-12))


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance over all pairs of rows (0 for fewer than two rows)."""
    n = features.shape[0]
    if n < 2:
        return 0.0
    distances = torch.cdist(features.float(), features.float())
    return float(distances.sum() / (n * (n - 1)))
