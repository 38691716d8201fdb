"""Build recipe of ``builtin:tiny-audio-lm``: fixed sizes and step counts, not time budgets, so every machine
builds the same model. ``full`` is the built-in model; ``reduced`` builds the same architecture in seconds
for tests (its cache carries the recipe's name, so the two never mix).

``ADRPO_AUDIO_RECIPE=reduced`` makes the built-in name resolve to the reduced build (the test suite sets
it; the full build's accuracy window is checked in a ``slow`` test).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..recipes import recipe_from_env

RECIPE_ENV = "ADRPO_AUDIO_RECIPE"


@dataclass(frozen=True)
class Recipe:
    name: str
    pretrain_seeds: int  # clips per task in the supervised pre-training set (seeds 0 .. n-1)
    pretrain_steps: int
    pretrain_batch: int
    pretrain_lr: float
    # Fraction of pre-training answers replaced by a uniformly drawn option: the model learns what the clip
    # says but stays unsure of its answer (sampled accuracy well below its greedy one), so RL has room.
    label_noise: float


FULL = Recipe(
    name="full", pretrain_seeds=1000, pretrain_steps=700, pretrain_batch=32, pretrain_lr=2e-3, label_noise=0.3
)
REDUCED = Recipe(
    name="reduced", pretrain_seeds=16, pretrain_steps=4, pretrain_batch=8, pretrain_lr=2e-3, label_noise=0.3
)
RECIPES = {recipe.name: recipe for recipe in (FULL, REDUCED)}


def active_recipe() -> Recipe:
    """The recipe the built-in name resolves to: $ADRPO_AUDIO_RECIPE (full | reduced), default full."""
    return recipe_from_env(RECIPE_ENV, RECIPES)
