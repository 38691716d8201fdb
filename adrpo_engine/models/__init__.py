"""Model loaders (causal LMs, SD3 pipelines) and the built-in demo models the project builds itself.

Which built-in models exist, and for which kind of job, is listed in ``adrpo_engine.kinds``.
"""

# Built-in reward models by what they are (the ``needs`` of adrpo_engine.rewards): the reward rows of a
# job may name them as their ``model``.
BUILTIN_REWARD_MODELS: dict[str, str] = {
    "builtin:tiny-lm-rm": "reward_model",
    "builtin:tiny-clip": "clip_model",
}
