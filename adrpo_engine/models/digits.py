"""``builtin:digits-flow`` as a :class:`FlowPolicy`: prompts, LoRA and the velocity of the pre-trained
flow network.

The world's parts live beside this module: the data (``digits_data``), the two networks
(``digits_nets``), their pre-training recipes and cache (``digits_pretrain``); the diversity maths is
``adrpo_engine.diversity``.

Prompts of the digits model: ``"any digit"`` (the null class: unconditional) or ``"digit K"`` with
``K`` in 0..9 (class K); case and surrounding spaces are ignored. The null class is also what
classifier-free guidance uses as its unconditional branch.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import ConfigError, JobConfig, LoraConfig
from .digits_data import DATA_DIM, NULL_CLASS, to_images
from .digits_nets import DigitClassifier
from .digits_pretrain import digit_classifier, fresh_flow_net
from .flow_policy import Cond, FlowPolicy

MODEL_NAME = "builtin:digits-flow"
# Linear layers of the flow network; the default LoRA targets.
LORA_TARGETS = ["inp", "hid1", "hid2", "out"]

_PROMPT = re.compile(r"^\s*(?:(any digit)|digit\s+([0-9]))\s*$", re.IGNORECASE)


def prompt_to_class(prompt: str) -> int:
    """``"any digit"`` -> the null class, ``"digit 3"`` -> 3; anything else is a ConfigError."""
    match = _PROMPT.match(prompt)
    if not match:
        raise ConfigError(
            f"prompts: {prompt!r} is not a prompt of {MODEL_NAME} (use 'any digit' or 'digit K' with K in 0..9)"
        )
    return NULL_CLASS if match.group(1) else int(match.group(2))


class DigitsPolicy(FlowPolicy):
    """``builtin:digits-flow`` behind the :class:`FlowPolicy` interface; samples are 64-d vectors."""

    name = MODEL_NAME
    eval_samples = 16

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.device = torch.device(device)
        # The network is tiny: bf16 would only add rounding noise, so it always runs in float32.
        self.dtype = torch.float32
        self.model: nn.Module = fresh_flow_net().to(self.device)
        self.peft_model = None

    @classmethod
    def from_config(cls, config: JobConfig, device: torch.device, dtype: torch.dtype) -> DigitsPolicy:
        """The factory ``kinds`` names for ``builtin:digits-flow``."""
        return cls(device=device, dtype=dtype)

    def encode_prompts(self, prompts: list[str]) -> Cond:
        labels = [prompt_to_class(prompt) for prompt in prompts]
        return {"labels": torch.tensor(labels, dtype=torch.long, device=self.device)}

    def null_cond(self, batch: int) -> Cond:
        return {"labels": torch.full((batch,), NULL_CLASS, dtype=torch.long, device=self.device)}

    def latent_shape(self) -> tuple[int, ...]:
        return (DATA_DIM,)

    def velocity(self, x_t: Tensor, t: Tensor, cond: Cond, adapter: bool = True) -> Tensor:
        if adapter or self.peft_model is None:
            return self.model(x_t, t, cond["labels"])
        with self.peft_model.disable_adapter():
            return self.model(x_t, t, cond["labels"])

    def decode(self, latents: Tensor) -> Tensor:
        return to_images(latents)

    def add_lora(self, lora: LoraConfig) -> None:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        targets = lora.target_modules or LORA_TARGETS
        unknown = sorted(set(targets) - set(LORA_TARGETS))
        if unknown:
            raise ConfigError(
                f"lora.target_modules: {unknown} are not layers of {MODEL_NAME} (choose from {LORA_TARGETS})"
            )
        peft_config = PeftLoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,  # pyright: ignore[reportArgumentType] (peft takes a float)
            lora_dropout=lora.dropout,
            target_modules=list(targets),
        )
        self.peft_model = get_peft_model(self.model, peft_config)
        self.model = self.peft_model

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def shardable_module(self) -> nn.Module:
        if self.peft_model is None:
            raise RuntimeError("the digits policy has no LoRA adapter yet (add_lora first)")
        return self.peft_model.get_base_model()  # the flow net: one FSDP unit (it has no repeated blocks)

    def save_adapter(self, directory: Path) -> None:
        if self.peft_model is None:
            raise RuntimeError("the digits policy has no LoRA adapter to save (add_lora first)")
        self.peft_model.save_pretrained(str(directory))

    def load_adapter(self, directory: Path) -> None:
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        result = set_peft_model_state_dict(self.peft_model, load_peft_weights(str(directory), device=str(self.device)))
        if getattr(result, "unexpected_keys", None):
            raise ConfigError(f"adapter {directory}: unexpected weights {result.unexpected_keys[:3]}")

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    @property
    def classifier(self) -> DigitClassifier:
        return digit_classifier()

    def describe_images(self, images: Tensor) -> list[str]:
        """ "looks like 4 (97%)": the built-in classifier's class and confidence, shown under each sample."""
        with torch.no_grad():
            probabilities = self.classifier.probabilities(images.float().cpu())
        confidence, classes = probabilities.max(dim=-1)
        return [f"looks like {int(c)} ({100 * float(p):.0f}%)" for c, p in zip(classes, confidence)]
