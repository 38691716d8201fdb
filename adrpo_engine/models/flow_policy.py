"""The policy interface the flow-matching trainer uses; the digits network and SD3 implement it.

A policy is a velocity field ``v(x_t, t, cond)`` with a LoRA adapter that can be switched off (the
adapter-off network is the reference: no second copy in memory). Time convention (``objectives``):
``t`` is the noise level, ``x_t = (1 - t) * x_data + t * noise``, target ``noise - x_data``;
sampling integrates ``dx/dt = v`` from ``t = 1`` (noise) down to ``t = 0`` (data).

``Cond`` is a dict of tensors whose first dimension is the batch (class labels for digits; prompt and
pooled embeddings for SD3), so the trainer can repeat and slice it without knowing the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from ..config import ConfigError, LoraConfig

Cond = dict[str, Tensor]


def repeat_cond(cond: Cond, times: int) -> Cond:
    """Each row repeated ``times`` times in place: rows ``[a, b]`` -> ``[a, a, b, b]`` (prompt groups)."""
    return {key: value.repeat_interleave(times, dim=0) for key, value in cond.items()}


def slice_cond(cond: Cond, rows: slice) -> Cond:
    return {key: value[rows] for key, value in cond.items()}


def cat_cond(first: Cond, second: Cond) -> Cond:
    return {key: torch.cat([first[key], second[key]], dim=0) for key in first}


class FlowPolicy(ABC):
    """A flow-matching generator with a switchable LoRA adapter."""

    name: str = ""
    eval_samples: int = 8  # images per eval prompt logged at each sample step
    # Set once FSDP shards the network (sharding.py): its all-gathered weights must not be inference tensors.
    weights_sharded: bool = False
    device: torch.device
    dtype: torch.dtype

    # ---------------------------------------------------------------- conditioning and the network

    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> Cond:
        """Conditioning for each prompt (batch = len(prompts)); implementations cache per prompt."""

    @abstractmethod
    def null_cond(self, batch: int) -> Cond:
        """The unconditional branch of classifier-free guidance, ``batch`` rows."""

    @abstractmethod
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one sample in the space the flow runs in (without the batch dimension)."""

    @abstractmethod
    def velocity(self, x_t: Tensor, t: Tensor, cond: Cond, adapter: bool = True) -> Tensor:
        """``v(x_t, t, cond)``; ``t`` is ``(B,)`` in [0, 1]; ``adapter=False`` gives the reference.
        Inputs may be float32 for a bf16 model (the implementation casts ``x_t``; ``t`` stays float32)."""

    @abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """Samples -> images ``(B, C, H, W)`` float in [0, 1] (for rewards and PNGs)."""

    def time_grid(self, steps: int) -> Tensor:
        """The ``steps + 1`` noise levels of the Euler sampler, from 1 down to 0."""
        return torch.linspace(1.0, 0.0, steps + 1)

    # ---------------------------------------------------------------- LoRA

    @abstractmethod
    def add_lora(self, lora: LoraConfig) -> None:
        """Wrap the network with a trainable LoRA adapter (the base weights stay frozen)."""

    @abstractmethod
    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    @abstractmethod
    def save_adapter(self, directory: Path) -> None:
        """Write the adapter (PEFT format; SD3 also diffusers' ``save_lora_weights`` format)."""

    @abstractmethod
    def load_adapter(self, directory: Path) -> None:
        """Load adapter weights written by :meth:`save_adapter` into the adapter added by :meth:`add_lora`."""

    def train(self, mode: bool = True) -> None:  # dropout of LoRA, if any
        pass

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the network's activations in the backward pass (``model.gradient_checkpointing``)."""
        raise ConfigError(f"model.gradient_checkpointing: not supported by {self.name or type(self).__name__}")

    def shardable_module(self) -> torch.nn.Module:
        """The network :meth:`velocity` calls, whose frozen weights FSDP may shard (``sharding.py``; the trainer
        then sets :attr:`weights_sharded`)."""
        raise ConfigError(f"resources.accelerate_config: FSDP is not supported by {self.name or type(self).__name__}")

    # ---------------------------------------------------------------- sampling

    def describe_images(self, images: Tensor) -> list[str] | None:
        """A short line per image for people (e.g. the class a built-in classifier sees), or None."""
        return None

    def guided_velocity(self, x_t: Tensor, t: Tensor, cond: Cond, guidance: float, adapter: bool) -> Tensor:
        """Classifier-free guidance ``v_u + g (v_c - v_u)``; one batched call for both branches."""
        if guidance == 1.0:
            return self.velocity(x_t, t, cond, adapter=adapter)
        batch = x_t.shape[0]
        both = self.velocity(
            torch.cat([x_t, x_t]), torch.cat([t, t]), cat_cond(self.null_cond(batch), cond), adapter=adapter
        )
        v_uncond, v_cond = both[:batch], both[batch:]
        return v_uncond + guidance * (v_cond - v_uncond)

    def sample(
        self,
        cond: Cond,
        generator: torch.Generator,
        steps: int,
        guidance: float = 1.0,
        adapter: bool = True,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Euler ODE from noise (``t = 1``) to data (``t = 0``), without gradients.

        The starting noise is drawn on the CPU from ``generator``, so a seed gives the same samples on
        any device. Returns the final latents (``decode`` turns them into images)."""
        batch = next(iter(cond.values())).shape[0]
        if noise is None:
            noise = torch.randn((batch, *self.latent_shape()), generator=generator, dtype=torch.float32)
        grid = self.time_grid(steps).tolist()
        # inference_mode skips autograd bookkeeping entirely (cheaper than no_grad); the result is cloned
        # outside it so the trainer may use the samples as ordinary tensors in its loss. FSDP's all-gather
        # buffers are reused by the training forward, so a sharded network samples under no_grad.
        with torch.no_grad() if self.weights_sharded else torch.inference_mode():
            # The state and t stay float32 (the network casts its input): a bf16 model then only rounds
            # inside the network, not the ODE's accumulated state or the time.
            x = noise.to(self.device, torch.float32)
            for t_now, t_next in zip(grid[:-1], grid[1:]):
                t = torch.full((batch,), t_now, device=self.device, dtype=torch.float32)
                v = self.guided_velocity(x, t, cond, guidance, adapter)
                x = x + (t_next - t_now) * v
        return x.clone()

    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        self.train(False)
        try:
            yield
        finally:
            self.train(True)
