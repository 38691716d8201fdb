"""``builtin:shapes-clip`` and ``builtin:shapes-sd3``: built on first use into the model cache, then loaded.

Cache folders ``paths.builtin_models_dir() / f"{name}-{CACHE_VERSIONS[name]}-{recipe}"`` (recipe from
``ADRPO_SHAPES_RECIPE``, see :mod:`.recipe`), written to a staging folder and renamed, so a reader never
sees half a model and two processes building at once keep one copy. The SD3 build needs the CLIP
(its text tower becomes both text encoders), so asking for the SD3 builds the CLIP first.
"""

from __future__ import annotations

from pathlib import Path

from ...builds import build_once
from ...paths import builtin_models_dir
from .recipe import Recipe, active_recipe

# Bumped when a model's recipe changes, so a cache of the old recipe is never loaded as the new one.
CACHE_VERSIONS = {"shapes-clip": "v1", "shapes-sd3": "v3"}  # v3: 4 blocks, DiT init, 6,000 steps
SHAPES_CLIP = "builtin:shapes-clip"
SHAPES_SD3 = "builtin:shapes-sd3"


def cache_path(name: str, recipe: Recipe) -> Path:
    return builtin_models_dir() / f"{name}-{CACHE_VERSIONS[name]}-{recipe.name}"


def shapes_clip_path(recipe: Recipe | None = None) -> Path:
    from .clip import build_shapes_clip

    recipe = recipe or active_recipe()
    return build_once(cache_path("shapes-clip", recipe), lambda folder: build_shapes_clip(folder, recipe))


def shapes_sd3_path(recipe: Recipe | None = None) -> Path:
    from .sd3 import build_shapes_sd3

    recipe = recipe or active_recipe()
    clip_dir = shapes_clip_path(recipe)
    return build_once(cache_path("shapes-sd3", recipe), lambda folder: build_shapes_sd3(folder, clip_dir, recipe))


def diversity_measure(rewards):
    """The per-step ``diversity`` of a ``builtin:shapes-sd3`` job (named in ``kinds``): ClipDiversity with the
    CLIP of the job's ``clip_score`` reward if it has one, else with ``builtin:shapes-clip``."""
    from ...rewards.image import clip_diversity, clip_embedder

    clip_specs = [spec for spec in rewards if spec.name == "clip_score"]
    model = clip_specs[0].options.get("model", SHAPES_CLIP) if clip_specs else SHAPES_CLIP
    embedder = clip_embedder(model)
    return lambda images, group_size: {"diversity": clip_diversity(embedder, images, group_size)}
