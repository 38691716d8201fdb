"""Built-in prompt sources of the shapes world (``prompts.file: builtin:NAME``):

- ``shapes-single``: the 12 one-object captions ("a red circle").
- ``shapes-compose``: compositional captions on the *seen* combinations (counts, "and", relations):
  the training prompts of the ``shapes-compose`` preset.
- ``shapes-heldout``: the same templates on the *held-out* combinations, never seen in pre-training
  nor in RL training: the evaluation prompts.
"""

from __future__ import annotations

from ...data import register_prompt_source
from . import data


@register_prompt_source("shapes-single")
def shapes_single() -> list[dict[str, str]]:
    return [{"prompt": text} for text in data.single_prompts()]


@register_prompt_source("shapes-compose")
def shapes_compose() -> list[dict[str, str]]:
    return [{"prompt": text} for text in data.compositional_prompts(held_out=False)]


@register_prompt_source("shapes-heldout")
def shapes_heldout() -> list[dict[str, str]]:
    return [{"prompt": text} for text in data.compositional_prompts(held_out=True)]
