"""Build recipes of the shapes world's models: fixed step counts, not time budgets, so every machine
builds the same models. ``full`` is what ``builtin:shapes-clip`` / ``builtin:shapes-sd3`` are; ``reduced``
builds the same classes in seconds for tests, with a 2-block transformer so the suite's rollouts stay cheap (its
caches carry the recipe's name, so the two never mix).

``ADRPO_SHAPES_RECIPE=reduced`` makes the built-in names resolve to the reduced build (the test suite
sets it; the quality targets are checked on the full build in a ``slow`` test).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..recipes import recipe_from_env

RECIPE_ENV = "ADRPO_SHAPES_RECIPE"


@dataclass(frozen=True)
class Recipe:
    name: str
    clip_images: int  # generated (image, caption) pairs for CLIP
    clip_steps: int
    clip_batch: int
    vae_images: int  # generated images the VAE trains on (also encoded once for the transformer)
    vae_steps: int
    vae_batch: int
    sd3_images: int  # generated images whose cached latents the transformer trains on
    sd3_steps: int
    sd3_batch: int
    sd3_layers: int  # joint transformer blocks
    sd3_dit_init: bool  # sd3.initialise_like_dit before training (else diffusers' default init)


FULL = Recipe(
    name="full",
    clip_images=4000,
    clip_steps=300,
    clip_batch=128,
    vae_images=2000,
    vae_steps=1000,
    vae_batch=16,
    sd3_images=8000,
    # 4 blocks x 6,000 steps: 2 blocks stayed at 0.3-0.4 on single-object prompts under every other change, and
    # 4 blocks learn geometry only after ~3,000 steps (docs/results/shapes_recipe_diagnosis.md section 5).
    sd3_steps=6000,
    sd3_batch=64,
    sd3_layers=4,
    sd3_dit_init=True,
)
REDUCED = Recipe(
    name="reduced",
    clip_images=256,
    clip_steps=4,
    clip_batch=32,
    vae_images=128,
    vae_steps=3,
    vae_batch=16,
    sd3_images=256,
    sd3_steps=4,
    sd3_batch=16,
    sd3_layers=2,
    # A few steps from adaLN-Zero leave every gate near 0: the model would draw the same whatever its LoRA,
    # and the tests that an adapter changes the samples could not tell.
    sd3_dit_init=False,
)
RECIPES = {recipe.name: recipe for recipe in (FULL, REDUCED)}


def active_recipe() -> Recipe:
    """The recipe the built-in names resolve to: $ADRPO_SHAPES_RECIPE (full | reduced), default full."""
    return recipe_from_env(RECIPE_ENV, RECIPES)
