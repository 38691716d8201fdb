"""Model loaders (causal LMs, SD3 pipelines) and the built-in demo models the project builds itself."""

# Built-in models by job kind, the CPU demo first: the loaders in this package accept exactly these.
BUILTIN_MODELS: dict[str, tuple[str, ...]] = {
    "flow": ("builtin:digits-flow", "builtin:tiny-sd3"),
    "llm": ("builtin:tiny-lm",),
}

# Built-in reward models by what they are (the ``needs`` of adrpo_engine.rewards): the reward rows of a
# job may name them as their ``model``.
BUILTIN_REWARD_MODELS: dict[str, str] = {
    "builtin:tiny-lm-rm": "reward_model",
    "builtin:tiny-clip": "clip_model",
}
