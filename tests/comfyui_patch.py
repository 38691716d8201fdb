"""ComfyUI's way of applying an SD3 LoRA file, done by hand (ComfyUI is not installed here): for each
``lora_transformer_<module path with _>`` key it maps onto the transformer, ``W += alpha / rank * up @ down``
(comfy/lora.py), so a test can check that the patched transformer gives the fine-tuned velocity."""

from __future__ import annotations

import torch

PREFIX = "lora_transformer_"
DOWN = ".lora_down.weight"


def apply_comfyui_lora(transformer: torch.nn.Module, state: dict[str, torch.Tensor]) -> set[str]:
    """Patch ``transformer`` in place with the LoRA ``state``; returns the module names it patched."""
    modules = {name.replace(".", "_"): module for name, module in transformer.named_modules()}
    patched = set()
    with torch.no_grad():
        for key in state:
            if not key.endswith(DOWN):
                continue
            name = key[len(PREFIX) : -len(DOWN)]
            down, up = state[key], state[f"{PREFIX}{name}.lora_up.weight"]
            alpha = float(state[f"{PREFIX}{name}.alpha"])
            modules[name].weight += alpha / down.shape[0] * up @ down
            patched.add(name)
    return patched


def velocity(transformer: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
    """The transformer's velocity as SD3Policy.velocity asks it (timestep scaled to [0, 1000])."""
    return transformer(
        hidden_states=x,
        timestep=t * 1000,
        encoder_hidden_states=cond["embeds"],
        pooled_projections=cond["pooled"],
        return_dict=False,
    )[0]
