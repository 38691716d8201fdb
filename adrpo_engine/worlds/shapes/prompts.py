"""Built-in prompt sources of the shapes world (registered in ``adrpo_engine.kinds``; ``prompts.file:
builtin:NAME``):

- ``shapes-single``: the 12 one-object captions ("a red circle").
- ``shapes-compose``: compositional captions on the *seen* combinations (counts, "and", relations):
  the training prompts of the ``shapes-compose`` preset.
- ``shapes-heldout``: the same templates on the *held-out* combinations, never seen in pre-training
  nor in RL training: the evaluation prompts.
"""

from __future__ import annotations

from . import data


def shapes_single() -> list[dict[str, str]]:
    return [{"prompt": text} for text in data.single_prompts()]


def shapes_compose() -> list[dict[str, str]]:
    return [{"prompt": text} for text in data.compositional_prompts(held_out=False)]


def shapes_heldout() -> list[dict[str, str]]:
    return [{"prompt": text} for text in data.compositional_prompts(held_out=True)]
