"""Model loaders (causal LMs, SD3 pipelines) and the built-in demo models the project builds itself."""

# Built-in models by job kind, the CPU demo first: the loaders in this package accept exactly these.
BUILTIN_MODELS: dict[str, tuple[str, ...]] = {
    "flow": ("builtin:digits-flow", "builtin:shapes-sd3", "builtin:tiny-sd3"),
    "llm": ("builtin:tiny-lm",),
}
