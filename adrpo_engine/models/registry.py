"""Which implementation loads a job's model: the kind's factory, or the one a built-in model names.

Kept apart from the interfaces (``flow_policy``) so that an interface module imports nothing of its
implementations: ``flow_policy`` <- ``digits``, ``sd3`` <- this module.
"""

from __future__ import annotations

import torch

from ..config import ConfigError, JobConfig
from ..kinds import BUILTIN_PREFIX, builtin_model_of, get_kind, load_target
from .flow_policy import FlowPolicy


def load_flow_policy(config: JobConfig, device: torch.device, dtype: torch.dtype) -> FlowPolicy:
    """The policy named by ``config.model.name_or_path``: a built-in flow model (its own factory, or the
    kind's), or an SD3 hub id / local pipeline directory (the kind's factory)."""
    spec = get_kind(config.kind)
    name = config.model.name_or_path
    factory = spec.policy_factory
    if name.startswith(BUILTIN_PREFIX):
        factory = builtin_model_of(name, config.kind).policy or factory
    if factory is None:
        raise ConfigError(f"kind: {config.kind!r} has no model factory")
    policy = load_target(factory)(config, device, dtype)
    if not isinstance(policy, FlowPolicy):
        raise TypeError(f"{factory} returned {type(policy).__name__}, not a FlowPolicy")
    return policy
