"""FSDP2 sharding of a job's frozen base weights across its processes (an accelerate config with
``distributed_type: FSDP``, ``fsdp_version: 2``).

With LoRA the weights that take memory are the frozen base ones; the adapter is small. So ``fully_shard`` is
applied to the units the config names (default: the model's ``_no_split_modules`` classes, e.g. a decoder layer
or an SD3 joint block) and to the root, with the LoRA parameters as FSDP's ``ignored_params``: each rank keeps
1/N of every frozen weight and all-gathers a unit's weights only while that unit runs (forward, backward, and
every step of rollout sampling), while the adapter stays a plain replicated tensor. Everything the data-parallel
path does with the adapter (``Distributed.sum_gradients``, AdamW, checkpoints saved whole by rank 0, the
reference pass with the adapter switched off) is unchanged, so a sharded run trains the adapter an unsharded
one trains.

What a caller must keep: every rank runs the same sequence of unit forwards (the all-gathers are collectives),
so rollouts are decoded in lockstep (``lm_sampling.decode_loop``'s ``others_running``), samples for the studio
are drawn on every rank, and weights are never swapped in place (no LoRA folding for sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import FsdpSettings
from .distributed import Distributed
from .errors import ConfigError


@dataclass(frozen=True)
class ShardReport:
    units: int  # FSDP units, the root included
    held: int  # frozen parameter elements this rank keeps
    total: int  # frozen parameter elements of the whole model

    def describe(self, world_size: int) -> str:
        return (
            f"FSDP2: the frozen weights are sharded over {world_size} processes in {self.units} units; this rank "
            f"holds {self.held:,} of {self.total:,} frozen parameters"
        )


def wrap_units(root: torch.nn.Module, settings: FsdpSettings) -> list[torch.nn.Module]:
    """The submodules that become FSDP units of their own, innermost first (FSDP2 wants children before parents)."""
    names = settings.wrap_classes
    if names is None:
        names = tuple(getattr(root, "_no_split_modules", None) or ())
    units = [module for module in root.modules() if module is not root and type(module).__name__ in names]
    if settings.wrap_classes:
        found = {type(module).__name__ for module in units}
        missing = [name for name in settings.wrap_classes if name not in found]
        if missing:
            classes = sorted({type(module).__name__ for module in root.modules()})
            raise ConfigError(
                f"resources.accelerate_config: fsdp_transformer_layer_cls_to_wrap names {missing[0]}, which is not "
                f"a module class of this model (its classes: {', '.join(classes[:20])})"
            )
    return list(reversed(units))


def shard_frozen_weights(
    root: torch.nn.Module, settings: FsdpSettings, dist: Distributed, device: torch.device
) -> ShardReport:
    """``fully_shard`` the units of ``root`` and ``root`` itself over all ranks, leaving trainable parameters whole."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    trainable = {parameter for parameter in root.parameters() if parameter.requires_grad}
    mesh = init_device_mesh(device.type, (dist.world_size,))
    units = wrap_units(root, settings)
    for module in [*units, root]:
        fully_shard(module, mesh=mesh, reshard_after_forward=settings.reshard_after_forward, ignored_params=trainable)
    return ShardReport(len(units) + 1, *frozen_elements(root))


def frozen_elements(root: torch.nn.Module) -> tuple[int, int]:
    """(elements this rank stores, elements of the whole model) over the frozen parameters of ``root``."""
    from torch.distributed.tensor import DTensor

    held = total = 0
    for parameter in root.parameters():
        if parameter.requires_grad:
            continue
        total += parameter.numel()
        held += parameter.to_local().numel() if isinstance(parameter, DTensor) else parameter.numel()
    return held, total
