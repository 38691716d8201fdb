"""Stable Diffusion 3 family (diffusers ``StableDiffusion3Pipeline``) as a :class:`FlowPolicy`.

- Loaded by hub id or local pipeline directory (``builtin:tiny-sd3`` = the miniature of ``tiny_sd3``,
  ``builtin:shapes-sd3`` = the trained miniature of ``worlds.shapes``, whose T5 slot is empty:
  ``adrpo_pipeline.json`` in its folder says ``max_sequence_length: 0``).
  A pipeline without T5 (``text_encoder_3=None``) is loaded as such; a hub pipeline keeps its T5.
- LoRA on the transformer only (PEFT through diffusers' ``add_adapter``); the reference is the same
  transformer with the adapter disabled.
- Prompt embeddings are computed once per prompt text with the pipeline's own ``encode_prompt`` and
  cached (text encoders are frozen); the empty prompt is the unconditional branch of CFG, as in the
  pipeline.
- Rollouts run in latent space with the pipeline's scheduler sigmas (shift included) and the Euler
  update the scheduler uses; latents are decoded by the VAE only to score them.
- Adapters are saved twice in one folder: ``pytorch_lora_weights.safetensors`` (diffusers format,
  ``pipe.load_lora_weights(folder)``) and ``adapter_model.safetensors`` + ``adapter_config.json``
  (PEFT format, ``PeftModel.from_pretrained(pipe.transformer, folder)``).

Time convention: the transformer takes ``timestep = 1000 * t`` with ``t`` the noise level (sigma).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor

from ..config import ConfigError, JobConfig, LoraConfig
from ..hub import first_line, is_hub_id, require_loadable
from ..kinds import resolve_model_path
from .flow_policy import Cond, FlowPolicy

DEFAULT_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
PEFT_PREFIX = "base_model.model."  # how PeftModel.save_pretrained names the wrapped model's keys
MAX_T5_TOKENS = 256  # the pipeline's default max_sequence_length
PROMPT_CACHE = 512  # prompts whose embeddings are kept on the device
PIPELINE_INFO = "adrpo_pipeline.json"  # written beside model_index.json by the project's own builds


def t5_tokens(pipeline_path: str) -> int:
    """The T5 slot length the pipeline was trained with: ``adrpo_pipeline.json``'s ``max_sequence_length``
    for a pipeline built here without T5 (``builtin:shapes-sd3``: 0), else the pipeline default 256."""
    info = Path(pipeline_path) / PIPELINE_INFO
    if info.is_file():
        return int(json.loads(info.read_text()).get("max_sequence_length", MAX_T5_TOKENS))
    return MAX_T5_TOKENS


def load_pipeline(name_or_path: str, revision: str | None = None, dtype: torch.dtype = torch.float32):
    """The pipeline by hub id or local path; a local one saved without T5 is loaded without it."""
    from diffusers import StableDiffusion3Pipeline

    path = resolve_model_path(name_or_path, kind="flow")
    if is_hub_id(path):
        require_loadable(path, revision)
    extra = {}
    index = Path(path) / "model_index.json"
    if index.is_file():
        components = json.loads(index.read_text())
        if components.get("text_encoder_3", [None])[0] is None:
            extra = {"text_encoder_3": None, "tokenizer_3": None}
    try:
        pipeline = StableDiffusion3Pipeline.from_pretrained(path, revision=revision, dtype=dtype, **extra)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"model.name_or_path: cannot load an SD3 pipeline from {name_or_path!r}: {first_line(error)}"
        ) from None
    pipeline.set_progress_bar_config(disable=True)
    pipeline.adrpo_t5_tokens = t5_tokens(path)
    return pipeline


class SD3Policy(FlowPolicy):
    """An SD3 pipeline whose transformer carries the trainable LoRA adapter."""

    def __init__(self, pipeline, device: torch.device, dtype: torch.dtype, resolution: int | None = None) -> None:
        self.pipeline = pipeline.to(device)
        self.device = torch.device(device)
        self.dtype = dtype
        self.transformer = pipeline.transformer
        for module in (
            pipeline.transformer,
            pipeline.vae,
            pipeline.text_encoder,
            pipeline.text_encoder_2,
            pipeline.text_encoder_3,
        ):
            if module is not None:
                module.requires_grad_(False).eval()
        self.vae_scale = pipeline.vae_scale_factor
        side = resolution or pipeline.default_sample_size * self.vae_scale
        if side % (self.vae_scale * pipeline.patch_size):
            raise ConfigError(
                f"flow.resolution: {side} must be a multiple of {self.vae_scale * pipeline.patch_size} for this model"
            )
        self.resolution = side
        self._prompt_cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()
        self.t5_tokens = getattr(pipeline, "adrpo_t5_tokens", MAX_T5_TOKENS)
        self.lora_config = None

    @classmethod
    def from_config(cls, config: JobConfig, device: torch.device, dtype: torch.dtype) -> SD3Policy:
        pipeline = load_pipeline(config.model.name_or_path, config.model.revision, dtype)
        return cls(pipeline, device, dtype, config.flow.resolution)

    # ---------------------------------------------------------------- conditioning

    def _embed(self, prompt: str) -> tuple[Tensor, Tensor]:
        """Embeddings of one prompt, from an LRU cache on the device (at most PROMPT_CACHE prompts:
        SD3's are 333 x 4096 values each, ~2.7 MB in bf16)."""
        if prompt in self._prompt_cache:
            self._prompt_cache.move_to_end(prompt)
        else:
            while len(self._prompt_cache) >= PROMPT_CACHE:
                self._prompt_cache.popitem(last=False)
            with torch.no_grad():
                embeds, _, pooled, _ = self.pipeline.encode_prompt(
                    prompt=prompt,
                    prompt_2=None,
                    prompt_3=None,
                    device=self.device,
                    do_classifier_free_guidance=False,
                    max_sequence_length=self.t5_tokens,
                )
            self._prompt_cache[prompt] = (embeds[0].to(self.dtype), pooled[0].to(self.dtype))
        return self._prompt_cache[prompt]

    def encode_prompts(self, prompts: list[str]) -> Cond:
        pairs = [self._embed(prompt) for prompt in prompts]
        return {"embeds": torch.stack([e for e, _ in pairs]), "pooled": torch.stack([p for _, p in pairs])}

    def null_cond(self, batch: int) -> Cond:
        embeds, pooled = self._embed("")
        return {"embeds": embeds.expand(batch, -1, -1), "pooled": pooled.expand(batch, -1)}

    def latent_shape(self) -> tuple[int, ...]:
        side = self.resolution // self.vae_scale
        return (self.transformer.config.in_channels, side, side)

    # ---------------------------------------------------------------- the network

    def velocity(self, x_t: Tensor, t: Tensor, cond: Cond, adapter: bool = True) -> Tensor:
        switch = self.lora_config is not None and not adapter
        if switch:
            self.transformer.disable_adapters()
        try:
            return self.transformer(
                hidden_states=x_t.to(self.dtype),
                timestep=t.float() * 1000.0,
                encoder_hidden_states=cond["embeds"],
                pooled_projections=cond["pooled"],
                return_dict=False,
            )[0]
        finally:
            if switch:
                self.transformer.enable_adapters()

    def time_grid(self, steps: int) -> Tensor:
        """The scheduler's sigmas for ``steps`` steps (SD3's shift included), ending at 0."""
        from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

        scheduler = self.pipeline.scheduler
        kwargs = {}
        if scheduler.config.get("use_dynamic_shifting", False):
            side = self.resolution // self.vae_scale // self.pipeline.patch_size
            kwargs["mu"] = calculate_shift(
                side * side,
                scheduler.config.get("base_image_seq_len", 256),
                scheduler.config.get("max_image_seq_len", 4096),
                scheduler.config.get("base_shift", 0.5),
                scheduler.config.get("max_shift", 1.16),
            )
        scheduler.set_timesteps(steps, device="cpu", **kwargs)
        return scheduler.sigmas.detach().float().cpu()

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        vae = self.pipeline.vae
        latents = latents.to(vae.dtype) / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        images = vae.decode(latents, return_dict=False)[0]
        return (images.float() / 2 + 0.5).clamp(0.0, 1.0)

    def train(self, mode: bool = True) -> None:
        self.transformer.train(mode)

    # ---------------------------------------------------------------- LoRA

    def shardable_module(self) -> torch.nn.Module:
        return self.transformer  # the text encoders and the VAE stay whole on every rank

    def add_lora(self, lora: LoraConfig) -> None:
        from peft import LoraConfig as PeftLoraConfig

        targets = lora.target_modules or DEFAULT_TARGETS
        self.lora_config = PeftLoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,  # pyright: ignore[reportArgumentType] (peft takes a float)
            lora_dropout=lora.dropout,
            target_modules=list(targets),
            init_lora_weights=True,
        )
        try:
            self.transformer.add_adapter(self.lora_config)
        except ValueError as error:
            raise ConfigError(f"lora.target_modules: {targets} do not match the SD3 transformer ({error})") from None
        # LoRA weights in float32 even for a bf16 model: Adam updates of tiny low-rank factors need the precision.
        for parameter in self.transformer.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.transformer.parameters() if p.requires_grad]

    def enable_gradient_checkpointing(self) -> None:
        """diffusers' checkpointing of every transformer block (recomputed whenever grad is on)."""
        self.transformer.enable_gradient_checkpointing()

    def lora_state_dict(self) -> dict[str, Tensor]:
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(self.transformer).items()}

    def save_adapter(self, directory: Path) -> None:
        from diffusers import StableDiffusion3Pipeline
        from safetensors.torch import save_file

        if self.lora_config is None:
            raise RuntimeError("the SD3 policy has no LoRA adapter to save (add_lora first)")
        directory = Path(directory)
        state = self.lora_state_dict()
        StableDiffusion3Pipeline.save_lora_weights(
            str(directory),
            transformer_lora_layers=dict(state),
            transformer_lora_adapter_metadata=self.lora_config.to_dict(),
        )
        save_file({PEFT_PREFIX + key: value for key, value in state.items()}, str(directory / PEFT_WEIGHTS))
        self.lora_config.save_pretrained(str(directory))

    def load_adapter(self, directory: Path) -> None:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        path = Path(directory) / PEFT_WEIGHTS
        if not path.is_file():
            raise ConfigError(f"adapter: {path} does not exist")
        state = {key.removeprefix(PEFT_PREFIX): value for key, value in load_file(str(path)).items()}
        result = set_peft_model_state_dict(self.transformer, state)
        if getattr(result, "unexpected_keys", None):
            raise ConfigError(f"adapter {directory}: weights that do not fit this model: {result.unexpected_keys[:3]}")
