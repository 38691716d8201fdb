"""ADRPO engine: adaptive divergence regularized policy optimization for LLMs and flow-matching models.

``from adrpo_engine import ADRPOConfig, ADRPOTrainer`` is the Python API (``adrpo_engine/trainer_api.py``).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports it on first use
    from .trainer_api import ADRPOConfig, ADRPOTrainer

__version__ = "0.1.0"
__all__ = ["ADRPOConfig", "ADRPOTrainer"]


def __getattr__(name: str) -> Any:
    # Lazy: `import adrpo_engine` (the CLI, the worker) stays free of torch until a trainer is asked for.
    if name in __all__:
        from . import trainer_api

        return getattr(trainer_api, name)
    raise AttributeError(f"module 'adrpo_engine' has no attribute {name!r}")
