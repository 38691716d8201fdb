"""Seeded images of one to three flat shapes with template captions, and the prompt grammar.

An image is ``(3, 32, 32)`` floats in [0, 1]: a dark background and flat, non-overlapping shapes
(circle, square, triangle) in a fixed palette. Captions come from four templates:

- single:   ``"a red circle"``
- count:    ``"two blue squares"``, ``"three yellow triangles"``
- pair:     ``"a red square and a green circle"``
- relation: ``"a yellow triangle to the left of a green circle"`` (also right of, above, below)

Held-out split (for evaluation on unseen combinations): a fixed quarter of the unordered pairs of
objects of different colours and a quarter of the (count, colour, shape) triples never appear in
the pre-training data nor in the RL training prompts; the eval prompts are built from them. Every
single object appears in training. The split is a pure function of :data:`SPLIT_SEED`.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

import numpy as np
import torch

IMAGE_SIDE = 32
BACKGROUND = (0.08, 0.08, 0.08)
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.88, 0.15),
}
COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle")
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
COUNT_WORDS = {2: "two", 3: "three"}
RELATIONS = ("to the left of", "to the right of", "above", "below")
SPLIT_SEED = 11
HELD_OUT_FRACTION = 0.25

# Shape size: half-extent in pixels (a square's side and a triangle's base are 2 * r).
MIN_RADIUS, MAX_RADIUS = 3.5, 5.5
GAP = 2.0  # minimum free pixels between two shapes' boxes, so connected components never merge
MIN_OFFSET = 6.0  # a relation image separates the centres by at least this along the relation's axis

# Template mix of the pre-training data (fractions of the images).
TEMPLATE_MIX = {"single": 0.4, "count": 0.2, "pair": 0.1, "relation": 0.3}


@dataclass(frozen=True)
class Obj:
    colour: str
    shape: str

    def phrase(self, count: int = 1) -> str:
        if count == 1:
            return f"a {self.colour} {self.shape}"
        return f"{COUNT_WORDS[count]} {self.colour} {self.shape}s"


@dataclass(frozen=True)
class Prompt:
    """A parsed caption: objects with counts, and an optional relation between the first two."""

    objects: tuple[tuple[Obj, int], ...]
    relation: str | None = None  # one of RELATIONS, or "and"/None

    @property
    def template(self) -> str:
        if len(self.objects) == 1:
            return "single" if self.objects[0][1] == 1 else "count"
        return "relation" if self.relation in RELATIONS else "pair"


ALL_OBJECTS = tuple(Obj(c, s) for c in COLOURS for s in SHAPES)

_OBJ = r"(a|an|one|two|three)\s+(" + "|".join(COLOURS) + r")\s+(" + "|".join(SHAPES) + r")(s?)"
_LINK = "|".join(["and"] + [relation.replace(" ", r"\s+") for relation in RELATIONS])
_PROMPT = re.compile(rf"^\s*{_OBJ}(?:\s+({_LINK})\s+{_OBJ})?\s*$", re.IGNORECASE)


def parse_prompt(text: str) -> Prompt | None:
    """The objects and relation of a caption in the world's grammar; None if it is not one."""
    match = _PROMPT.match(text)
    if not match:
        return None
    groups = [g.lower() if g else g for g in match.groups()]

    def read(number: str, colour: str, shape: str, plural: str) -> tuple[Obj, int] | None:
        count = NUMBERS[number]
        if (count > 1) != bool(plural):
            return None  # "two red circle", "a red circles"
        return Obj(colour, shape), count

    first = read(*groups[0:4])
    if first is None:
        return None
    if groups[4] is None:
        return Prompt((first,))
    second = read(*groups[5:9])
    if second is None:
        return None
    relation = re.sub(r"\s+", " ", groups[4])
    return Prompt((first, second), relation)


# ----------------------------------------------------------------------------------------------
# The split of combinations


def _pair_key(a: Obj, b: Obj) -> tuple[Obj, Obj]:
    return tuple(sorted((a, b), key=ALL_OBJECTS.index))  # type: ignore[return-value]


def _split() -> tuple[frozenset, frozenset]:
    rng = random.Random(SPLIT_SEED)
    pairs = [(a, b) for a, b in itertools.combinations(ALL_OBJECTS, 2) if a.colour != b.colour]
    rng.shuffle(pairs)
    held_pairs = frozenset(pairs[: round(HELD_OUT_FRACTION * len(pairs))])
    triples = [(n, o) for n in COUNT_WORDS for o in ALL_OBJECTS]
    rng.shuffle(triples)
    held_counts = frozenset(triples[: round(HELD_OUT_FRACTION * len(triples))])
    return held_pairs, held_counts


HELD_OUT_PAIRS, HELD_OUT_COUNTS = _split()


def grammar_prompt(text: str) -> Prompt:
    """:func:`parse_prompt` for captions this module wrote itself: one that does not parse is a bug here."""
    prompt = parse_prompt(text)
    if prompt is None:
        raise ValueError(f"not a caption of the shapes grammar: {text!r}")
    return prompt


def is_held_out(prompt: Prompt) -> bool:
    if len(prompt.objects) == 2:
        return _pair_key(prompt.objects[0][0], prompt.objects[1][0]) in HELD_OUT_PAIRS
    obj, count = prompt.objects[0]
    return (count, obj) in HELD_OUT_COUNTS


def _caption(prompt: Prompt) -> str:
    if len(prompt.objects) == 1:
        obj, count = prompt.objects[0]
        return obj.phrase(count)
    (a, _), (b, _) = prompt.objects
    return f"{a.phrase()} {prompt.relation} {b.phrase()}"


def all_prompts(template: str) -> list[str]:
    """Every caption of a template ('single', 'count', 'pair', 'relation'), in a fixed order."""
    if template == "single":
        return [o.phrase() for o in ALL_OBJECTS]
    if template == "count":
        return [o.phrase(n) for n in COUNT_WORDS for o in ALL_OBJECTS]
    relations = ("and",) if template == "pair" else RELATIONS
    return [
        _caption(Prompt(((a, 1), (b, 1)), r))
        for a, b in itertools.permutations(ALL_OBJECTS, 2)
        if a.colour != b.colour
        for r in relations
    ]


def compositional_prompts(held_out: bool) -> list[str]:
    """Count, pair and relation captions on the seen (``held_out=False``) or held-out combinations."""
    texts = all_prompts("count") + all_prompts("pair") + all_prompts("relation")
    return [t for t in texts if is_held_out(grammar_prompt(t)) == held_out]


def single_prompts() -> list[str]:
    return all_prompts("single")


# ----------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Placed:
    obj: Obj
    cx: float
    cy: float
    r: float


def shape_mask(shape: str, cx: float, cy: float, r: float, side: int = IMAGE_SIDE) -> np.ndarray:
    """Boolean ``(side, side)`` mask of one shape, sampled at pixel centres (y grows downwards)."""
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "triangle":  # apex up, base 2r at the bottom, height 2r
        inside_y = (dy >= -r) & (dy <= r)
        half_width = (dy + r) / 2.0  # 0 at the apex, r at the base
        return inside_y & (np.abs(dx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}")


def render(placed: list[Placed], side: int = IMAGE_SIDE) -> np.ndarray:
    """``(3, side, side)`` float32 image in [0, 1]."""
    image = np.empty((3, side, side), dtype=np.float32)
    image[:] = np.array(BACKGROUND, dtype=np.float32)[:, None, None]
    for item in placed:
        mask = shape_mask(item.obj.shape, item.cx, item.cy, item.r, side)
        image[:, mask] = np.array(PALETTE[item.obj.colour], dtype=np.float32)[:, None]
    return image


def _free(candidate: tuple[float, float, float], placed: list[Placed]) -> bool:
    cx, cy, r = candidate
    return all(abs(cx - p.cx) >= r + p.r + GAP or abs(cy - p.cy) >= r + p.r + GAP for p in placed)


def _random_spot(rng: random.Random, r: float) -> tuple[float, float]:
    return rng.uniform(r + 0.5, IMAGE_SIDE - r - 0.5), rng.uniform(r + 0.5, IMAGE_SIDE - r - 0.5)


def _relation_holds(relation: str | None, a: tuple[float, float], b: tuple[float, float]) -> bool:
    (ax, ay), (bx, by) = a, b
    return {
        "to the left of": bx - ax >= MIN_OFFSET,
        "to the right of": ax - bx >= MIN_OFFSET,
        "above": by - ay >= MIN_OFFSET,
        "below": ay - by >= MIN_OFFSET,
    }.get(relation or "", True)


def layout(prompt: Prompt, rng: random.Random, tries: int = 200) -> list[Placed] | None:
    """Positions and sizes for a prompt's objects (rejection sampling); None if none fit in ``tries``."""
    wanted = [obj for obj, count in prompt.objects for _ in range(count)]
    for _ in range(tries):
        placed: list[Placed] = []
        for obj in wanted:
            r = rng.uniform(MIN_RADIUS, MAX_RADIUS)
            for _ in range(50):
                cx, cy = _random_spot(rng, r)
                if _free((cx, cy, r), placed):
                    placed.append(Placed(obj, cx, cy, r))
                    break
            else:
                break
        if len(placed) == len(wanted) and (
            len(prompt.objects) < 2
            or _relation_holds(prompt.relation, (placed[0].cx, placed[0].cy), (placed[1].cx, placed[1].cy))
        ):
            return placed
    return None


def random_prompt(rng: random.Random, template: str) -> Prompt:
    """A random caption of a template on the seen combinations (never a held-out one)."""
    while True:
        if template == "single":
            prompt = Prompt(((rng.choice(ALL_OBJECTS), 1),))
        elif template == "count":
            prompt = Prompt(((rng.choice(ALL_OBJECTS), rng.choice((2, 3))),))
        else:
            a = rng.choice(ALL_OBJECTS)
            b = rng.choice([o for o in ALL_OBJECTS if o.colour != a.colour])
            relation = "and" if template == "pair" else rng.choice(RELATIONS)
            prompt = Prompt(((a, 1), (b, 1)), relation)
        if not is_held_out(prompt):
            return prompt


def generate(count: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """``count`` images ``(N, 3, 32, 32)`` in [0, 1] with their captions, the template mix of
    :data:`TEMPLATE_MIX`, only seen combinations; the same ``seed`` gives the same data."""
    rng = random.Random(seed)
    templates, weights = zip(*TEMPLATE_MIX.items())
    images, captions = [], []
    while len(images) < count:
        prompt = random_prompt(rng, rng.choices(templates, weights)[0])
        placed = layout(prompt, rng)
        if placed is None:
            continue
        images.append(render(placed))
        captions.append(_caption(prompt))
    return torch.from_numpy(np.stack(images)), captions
