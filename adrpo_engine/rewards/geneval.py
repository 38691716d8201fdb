"""``shapes:geneval``: a rule-based verifier of the shapes world in the spirit of GenEval.

It reads the objects off the pixels and checks a caption's constraints, returning the fraction satisfied:

1. **Segment by palette colour**: each pixel (image resized to 32x32) takes the nearest of the palette
   colours and the background (RGB distance); a pixel farther than :data:`COLOUR_TOLERANCE` from all of
   them counts as background.
2. **Connected components** per colour (8-connected); components under :data:`MIN_AREA` pixels are noise.
3. **Shape** from the component's mass in its bounding box: a triangle (apex up) has ~1/3 of its
   pixels in the top half, a circle and a square ~1/2; a square fills the box's corners, a circle none
   (:func:`classify_shape`). **Position** from the centroid.
4. **Constraints** of the parsed caption (``worlds.shapes.data.parse_prompt``), each 0 or 1:

   - ``object``: for each named object, some component has its shape (any colour);
   - ``colour`` (one-object captions) / ``binding`` (two-object captions: the colour is bound to the right
     shape, GenEval's attribute binding): some component has its shape *and* colour;
   - ``count`` (one-object captions): the number of components of that colour and shape equals the
     caption's number ("a" = 1, "two", "three");
   - ``position`` (relation captions): the largest component of the first object is left of / right of /
     above / below that of the second by more than :data:`POSITION_MARGIN` pixels (centroids).

The reward is the mean of a caption's constraints; a caption outside the grammar gets ``None`` (no
reward). After each call, ``reward.last_breakdown`` holds the batch mean of each constraint over the
captions that have it (``geneval/object``, ``geneval/colour``, ``geneval/binding``, ``geneval/count``,
``geneval/position``) and ``geneval/strict``, the fraction of images meeting *all* their constraints
(GenEval's own per-image score); the trainers log them as ``reward/geneval/...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor

from ..worlds.shapes import data as world
from . import register_reward

COLOUR_TOLERANCE = 0.35
MIN_AREA = 8
POSITION_MARGIN = 2.0
TRIANGLE_TOP_SHARE = 0.6  # top-half / bottom-half pixels: triangle 0.29-0.5, circle and square >= 0.71
CONSTRAINTS = ("object", "colour", "binding", "count", "position")
BREAKDOWN_PREFIX = "geneval/"


@dataclass(frozen=True)
class Detection:
    colour: str
    shape: str
    cx: float
    cy: float
    area: int


def colour_labels(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` int labels: index into ``world.COLOURS``, or -1 for background / unknown."""
    colours = np.array([world.PALETTE[c] for c in world.COLOURS] + [world.BACKGROUND], dtype=np.float32)
    pixels = image.transpose(1, 2, 0)[:, :, None, :]  # (H, W, 1, 3)
    distances = np.linalg.norm(pixels - colours[None, None], axis=-1)  # (H, W, K+1)
    labels = distances.argmin(axis=-1)
    labels[(labels == len(world.COLOURS)) | (distances.min(axis=-1) > COLOUR_TOLERANCE)] = -1
    return labels


def classify_shape(mask: np.ndarray) -> str:
    """Triangle (apex up) if the top half of the bounding box holds much less than the bottom half;
    else square if at least two bounding-box corners are filled (a circle fills none); else circle."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    middle = (y0 + y1) / 2.0
    top, bottom = int((ys < middle).sum()), int((ys > middle).sum())
    if top < TRIANGLE_TOP_SHARE * max(bottom, 1):
        return "triangle"
    corners = int(mask[y0, x0]) + int(mask[y0, x1]) + int(mask[y1, x0]) + int(mask[y1, x1])
    return "square" if corners >= 2 else "circle"


def detect(image: Tensor | np.ndarray) -> list[Detection]:
    """The objects of one ``(3, H, W)`` image in [0, 1]."""
    from scipy import ndimage

    if isinstance(image, Tensor):
        image = _to_world_size(image[None])[0].numpy()
    labels = colour_labels(image.astype(np.float32))
    found: list[Detection] = []
    for index, colour in enumerate(world.COLOURS):
        components, count = cast(
            tuple[np.ndarray, int], ndimage.label(labels == index, structure=np.ones((3, 3), dtype=bool))
        )  # scipy's stub types the output= variant
        for label in range(1, count + 1):
            mask = components == label
            area = int(mask.sum())
            if area < MIN_AREA:
                continue
            ys, xs = np.nonzero(mask)
            found.append(Detection(colour, classify_shape(mask), float(xs.mean()) + 0.5, float(ys.mean()) + 0.5, area))
    return found


def _to_world_size(images: Tensor) -> Tensor:
    images = images.detach().float().cpu().clamp(0.0, 1.0)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-2:] != (world.IMAGE_SIDE, world.IMAGE_SIDE):
        images = torch.nn.functional.interpolate(images, size=(world.IMAGE_SIDE, world.IMAGE_SIDE), mode="area")
    return images


def _relation_holds(relation: str, a: Detection, b: Detection) -> bool:
    return {
        "to the left of": b.cx - a.cx > POSITION_MARGIN,
        "to the right of": a.cx - b.cx > POSITION_MARGIN,
        "above": b.cy - a.cy > POSITION_MARGIN,
        "below": a.cy - b.cy > POSITION_MARGIN,
    }[relation]


def check(prompt: world.Prompt, detections: list[Detection]) -> dict[str, list[bool]]:
    """Each constraint of ``prompt`` (name -> one bool per instance) on an image's detections."""
    results: dict[str, list[bool]] = {}
    one_object = len(prompt.objects) == 1
    largest: list[Detection | None] = []
    for obj, count in prompt.objects:
        matching = [d for d in detections if d.colour == obj.colour and d.shape == obj.shape]
        results.setdefault("object", []).append(any(d.shape == obj.shape for d in detections))
        results.setdefault("colour" if one_object else "binding", []).append(bool(matching))
        if one_object:
            results.setdefault("count", []).append(len(matching) == count)
        largest.append(max(matching, key=lambda d: d.area) if matching else None)
    if prompt.relation in world.RELATIONS:
        a, b = largest
        results["position"] = [a is not None and b is not None and _relation_holds(prompt.relation, a, b)]
    return results


def score(prompt_text: str, image: Tensor | np.ndarray) -> tuple[float | None, dict[str, list[bool]]]:
    """The verifier's reward for one image and caption, with the per-constraint results."""
    prompt = world.parse_prompt(prompt_text)
    if prompt is None:
        return None, {}
    results = check(prompt, detect(image))
    values = [value for checks in results.values() for value in checks]
    return sum(values) / len(values), results


class GenevalReward:
    """The registered reward: a callable with the last batch's per-constraint means in ``last_breakdown``."""

    def __init__(self) -> None:
        self.last_breakdown: dict[str, float] = {}

    def __call__(self, images: Tensor, prompts: Sequence[str], **_: object) -> list[float | None]:
        if len(prompts) != images.shape[0]:
            raise ValueError(f"shapes:geneval: {images.shape[0]} images but {len(prompts)} prompts")
        small = _to_world_size(images)
        rewards: list[float | None] = []
        sums: dict[str, list[float]] = {}
        strict: list[float] = []
        for image, prompt in zip(small, prompts):
            value, results = score(prompt, image.numpy())
            rewards.append(value)
            if value is None:
                continue
            strict.append(float(value == 1.0))
            for name, checks in results.items():
                sums.setdefault(name, []).extend(float(c) for c in checks)
        self.last_breakdown = {BREAKDOWN_PREFIX + name: sum(v) / len(v) for name, v in sums.items()}
        if strict:
            self.last_breakdown[BREAKDOWN_PREFIX + "strict"] = sum(strict) / len(strict)
        return rewards


@register_reward(
    "shapes:geneval",
    "image",
    "Shapes-world verifier (builtin:shapes-sd3): fraction of a caption's object/colour/count/position constraints met.",
    needs="builtin",
)
def shapes_geneval() -> GenevalReward:
    return GenevalReward()
