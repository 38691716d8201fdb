"""Loading and querying the transformers CLIP models that image rewards score with (clip_score, PickScore,
the aesthetic predictor's CLIP): one loader, one feature read-out, one place for config lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from transformers import CLIPModel


def reward_device(device: str | None) -> torch.device:
    """The device a reward model runs on: as given, or CUDA when there is one ("auto" or unset)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def freeze_on(module: nn.Module, device: torch.device) -> None:
    """Move ``module`` to ``device`` in eval mode without gradients: reward models only score."""
    # Through nn.Module's own signature: transformers wraps PreTrainedModel.to in a way type checkers misread.
    module.to(device)
    module.eval()
    module.requires_grad_(False)


def load_frozen_clip(name_or_path: str, device: torch.device, what: str) -> CLIPModel:
    """A CLIPModel by hub id or local path, frozen on ``device``; ``what`` names it in the error."""
    from transformers import CLIPModel

    try:
        model = CLIPModel.from_pretrained(name_or_path)
    except OSError as error:
        raise ConfigError(f"rewards: cannot load {what} {name_or_path!r}: {error}") from None
    freeze_on(model, device)
    return model


def normalised_features(output: Any) -> Tensor:
    """Unit-norm embeddings from get_image_features / get_text_features: transformers 5 returns an output
    object holding them as ``pooler_output``, earlier versions the tensor itself."""
    embeds = output if isinstance(output, Tensor) else output.pooler_output
    return torch.nn.functional.normalize(embeds.float(), dim=-1)


def clip_setting(model: CLIPModel, path: str) -> int:
    """An integer setting of a CLIP config by dotted path (``vision_config.image_size``, ``projection_dim``)."""
    value: Any = model.config
    for key in path.split("."):
        value = getattr(value, key, None)
    if not isinstance(value, int):
        raise ConfigError(f"rewards: the CLIP model's config has no integer {path} (got {value!r})")
    return value
