"""Malformed job submissions (request body, the field the refusal must name), shared by the API
tests on SQLite and the scale-out tests on PostgreSQL."""

from __future__ import annotations

import copy

from adrpo_engine.presets import PRESETS

BASE = copy.deepcopy(PRESETS["digits-even"].config)


def config_with(**changes):
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return data


DELETE = object()


def preset(**overrides):
    return {"preset": "digits-even", "overrides": overrides}


MALFORMED: list[tuple[str, object, str]] = [
    # wrong types
    ("body is a list", [1, 2], "body"),
    ("body is a string", "digits-even", "body"),
    ("beta0 is text", preset(beta0="lots"), "beta0"),
    ("steps is a float", preset(steps=1.5), "steps"),
    ("steps is a list", preset(steps=[3]), "steps"),
    ("group_size is text", preset(group_size="eight"), "group_size"),
    ("lora.rank is text", preset(**{"lora.rank": "big"}), "lora.rank"),
    ("rewards is a string", config_with(rewards="digits:even"), "rewards"),
    ("model is a string", config_with(model="builtin:digits-flow"), "model"),
    ("overrides is a list", {"preset": "digits-even", "overrides": ["steps=3"]}, "overrides"),
    # out of range
    ("negative beta0", preset(beta0=-0.1), "beta0"),
    ("huge beta0", preset(beta0=1e9), "beta0"),
    ("a_min above a_max", preset(a_min=0.5, a_max=0.1), "a_min"),
    ("a_max out of range", preset(a_max=50), "a_max"),
    ("a_min out of range", preset(a_min=-50), "a_min"),
    ("zero steps", preset(steps=0), "steps"),
    ("group of one", preset(group_size=1), "group_size"),
    ("lr of zero", preset(lr=0), "lr"),
    ("lr above one", preset(lr=3), "lr"),
    ("negative seed", preset(seed=-1), "seed"),
    ("fixed flow with a_min at -beta0", preset(algorithm="fixed", a_min=-0.1), "a_min"),
    ("orw for an llm", config_with(kind="llm", algorithm="orw"), "algorithm"),
    # unknown names
    ("unknown preset", {"preset": "no-such-preset"}, "preset"),
    ("unknown top-level key", preset(bta0=0.02), "bta0"),
    ("unknown algorithm", preset(algorithm="ppo"), "algorithm"),
    ("unknown kind", config_with(kind="video"), "kind"),
    ("unknown built-in model", preset(**{"model.name_or_path": "builtin:nope"}), "model.name_or_path"),
    ("llm model for a flow job", preset(**{"model.name_or_path": "builtin:tiny-lm"}), "model.name_or_path"),
    ("unknown reward", config_with(rewards=[{"name": "no_such_reward"}]), "rewards.0.name"),
    (
        "text reward for a flow job",
        config_with(rewards=[{"name": "digits:even"}, {"name": "length"}]),
        "rewards.1.name",
    ),
    ("unknown built-in prompts", preset(**{"prompts.file": "builtin:nope"}), "prompts.file"),
    ("unknown key beside preset", {"preset": "digits-even", "steps": 3}, "steps"),
    # missing fields
    ("no kind", config_with(kind=DELETE), "kind"),
    ("no model", config_with(model=DELETE), "model"),
    (
        "image reward on an llm job",
        config_with(
            kind="llm",
            model={"name_or_path": "builtin:tiny-lm"},
            prompts={"dataset": "builtin:tiny-lm-task"},
            rewards=[{"name": "length"}, {"name": "clip_score"}],
        ),
        "rewards.1.name",
    ),
    (
        "reward model where a CLIP model is needed",
        config_with(rewards=[{"name": "digits:even"}, {"name": "clip_score", "model": "builtin:tiny-lm-rm"}]),
        "rewards.1.model",
    ),
    (
        "a model for a reward that takes none",
        config_with(rewards=[{"name": "digits:even", "model": "builtin:tiny-clip"}]),
        "rewards.0.model",
    ),
    (
        "reward option of the wrong type",
        config_with(rewards=[{"name": "digits:class", "options": {"k": "four"}}]),
        "rewards.0.options.k",
    ),
    (
        "reward option out of range",
        config_with(rewards=[{"name": "digits:class", "options": {"k": 12}}]),
        "rewards.0.options.k",
    ),
    (
        "every reward weight zero",
        config_with(rewards=[{"name": "digits:even", "weight": 0}, {"name": "digits:class", "weight": 0}]),
        "rewards",
    ),
    ("no rewards", config_with(rewards=DELETE), "rewards"),
    ("empty rewards", config_with(rewards=[]), "rewards"),
    ("no prompts at all", config_with(prompts={}), "prompts"),
    # oversized values and path tricks
    ("oversized prompt list", preset(**{"prompts.texts": ["x" * 3000] * 200}), "config"),
    ("path tricks in the name", preset(name="../../etc/passwd"), "name"),
    ("path tricks in the prompts file", preset(**{"prompts.file": "../../../etc/passwd"}), "prompts.file"),
]
