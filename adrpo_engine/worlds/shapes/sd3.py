"""``builtin:shapes-sd3``: a miniature Stable Diffusion 3 pre-trained by flow matching on the shapes world.

A diffusers ``StableDiffusion3Pipeline`` of

- ``SD3Transformer2DModel``: 16x16x4 latents, patch 2 (64 image tokens), 4 joint blocks (the recipe's
  ``sd3_layers``) of 2 heads x 32, joint_attention_dim 128 (= the two CLIP hidden states side by side),
  pooled projection 128 (= the two CLIP projections), initialised as DiT's in the full recipe
  (:func:`initialise_like_dit`);
- ``AutoencoderKL``: blocks (16, 32) (scale factor 2), 4 latent channels, no mid-block attention
  (on CPU, full attention over its 1,024 positions costs more than the rest of the VAE); its
  ``scaling_factor`` / ``shift_factor`` are set from the latents' statistics, as SD3's are;
- two ``CLIPTextModelWithProjection``, both the text tower of ``builtin:shapes-clip`` (frozen), with
  its tokenizer; no T5 (``text_encoder_3=None``). That CLIP barely tells shapes apart (cosine 0.95 between
  the pooled embeddings of "a red circle" and "a red square", -0.09 to "a green circle"); training the two
  encoders with the transformer was measured (docs/flow.md) and gave no gain at 500-1,500 steps, so they
  stay frozen;
- ``FlowMatchEulerDiscreteScheduler(shift=3.0)``, SD3's.

Recipe (fixed step counts, :mod:`.recipe`): train the VAE on generated images (L1 with the shape pixels
weighted 5x: with a plain L1 the background, ~90% of the pixels, dominates and the 200-step VAE of
build v1 decoded every shape as a faint green blob; the verifier read 0.16 on its reconstructions of
rendered data, so no transformer could have scored more), encode the transformer's
training images once (posterior mean) and train the transformer on these cached latents in SD3's time
convention (``x_t = (1 - t) x + t noise``, target ``noise - x``, ``timestep = 1000 t``, ``t``
logit-normal(0, 1)), with 10% of the captions dropped to ``""`` for classifier-free guidance. The transformer
trains with two torch threads (the build is otherwise single-threaded, builds.py): at 4 blocks x batch 64 a
step took 189 ms on one thread and 122 ms on two on a quiet 2-core box (143 ms in the measured full build).

The T5 slot: a pipeline without T5 fills it with ``max_sequence_length`` zero tokens (default 256), which
would make every text sequence 16 + 256 tokens long and the transformer 4x slower. This model is trained
with the slot empty, so call it with ``max_sequence_length=0``; :data:`PIPELINE_INFO` in the pipeline
folder records that and ``models.sd3.SD3Policy`` reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from ...models.sd3 import (
    PIPELINE_INFO,  # read back by models.sd3 (max_sequence_length); diffusers ignores it
)
from ...threads import torch_threads
from . import data
from .clip import PROJECTION, load_tokenizer, text_config
from .recipe import Recipe

T5_TOKENS = 0
LATENT_CHANNELS = 4
VAE_BLOCKS = (16, 32)  # one 2x downsampling between blocks: 32 x 32 images -> 16 x 16 latents
VAE_LR = 2e-3
VAE_KL_WEIGHT = 1e-6
VAE_FOREGROUND_WEIGHT = 4.0  # shape pixels count 1 + 4 times in the VAE's L1 (they are ~10% of an image)
SD3_LR = 2e-3
CAPTION_DROPOUT = 0.1
HEADS, HEAD_DIM, PATCH = 2, 32, 2
TRANSFORMER_THREADS = min(2, os.cpu_count() or 1)


def new_vae():
    from diffusers import AutoencoderKL

    # A config dict: diffusers annotates the block tuples as one-element tuples (tuple[int]).
    config = {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": LATENT_CHANNELS,
        "block_out_channels": VAE_BLOCKS,
        "layers_per_block": 1,
        "down_block_types": ("DownEncoderBlock2D",) * len(VAE_BLOCKS),
        "up_block_types": ("UpDecoderBlock2D",) * len(VAE_BLOCKS),
        "norm_num_groups": 8,
        "sample_size": data.IMAGE_SIDE,
        "mid_block_add_attention": False,
        "scaling_factor": 1.0,
        "shift_factor": 0.0,
    }
    return AutoencoderKL(**config)


def new_transformer(
    text_hidden: int,
    projection: int,
    layers: int,
    heads: int = HEADS,
    head_dim: int = HEAD_DIM,
    patch: int = PATCH,
):
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=data.IMAGE_SIDE // 2,
        patch_size=patch,
        in_channels=LATENT_CHANNELS,
        num_layers=layers,
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=2 * text_hidden,
        caption_projection_dim=heads * head_dim,
        pooled_projection_dim=2 * projection,
        out_channels=LATENT_CHANNELS,
        pos_embed_max_size=16,
    )


def initialise_like_dit(transformer) -> None:
    """DiT's initialisation (Peebles & Xie 2023, "adaLN-Zero"): Xavier-uniform linear layers and patch projection,
    N(0, 0.02) timestep MLP, and zero modulation and output layers so every block starts as the identity and the
    first prediction is 0. Diffusers' classes keep PyTorch's default init, made for loading trained weights."""
    from diffusers.models.normalization import AdaLayerNormContinuous, AdaLayerNormZero

    for module in transformer.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    projection = transformer.pos_embed.proj
    torch.nn.init.xavier_uniform_(projection.weight.view(projection.weight.shape[0], -1))
    torch.nn.init.zeros_(projection.bias)
    embedder = transformer.time_text_embed.timestep_embedder
    for linear in (embedder.linear_1, embedder.linear_2):
        torch.nn.init.normal_(linear.weight, std=0.02)
    for module in transformer.modules():
        if isinstance(module, (AdaLayerNormZero, AdaLayerNormContinuous)):
            torch.nn.init.zeros_(module.linear.weight)
            torch.nn.init.zeros_(module.linear.bias)
    torch.nn.init.zeros_(transformer.proj_out.weight)
    torch.nn.init.zeros_(transformer.proj_out.bias)


def train_vae(recipe: Recipe, seed: int, log=print):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, _ = data.generate(recipe.vae_images, seed=2000 + seed)
    x = images * 2.0 - 1.0
    background = torch.tensor(data.BACKGROUND).view(1, 3, 1, 1) * 2.0 - 1.0
    vae = new_vae()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=VAE_LR, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, VAE_LR, total_steps=recipe.vae_steps, pct_start=0.1)
    vae.train()
    for step in range(recipe.vae_steps):
        batch = x[torch.randint(0, x.shape[0], (recipe.vae_batch,), generator=generator)]
        posterior = vae.encode(batch, return_dict=False)[0]
        latents = posterior.sample(generator=None)
        # diffusers annotates z with the legacy torch.FloatTensor alias, which no Tensor satisfies statically.
        recon = vae.decode(latents, return_dict=False)[0]  # pyright: ignore[reportArgumentType]
        weight = 1.0 + VAE_FOREGROUND_WEIGHT * (batch - background).abs().amax(dim=1, keepdim=True).gt(0.1).float()
        loss = ((recon - batch).abs() * weight).mean() + VAE_KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == recipe.vae_steps - 1:
            log(f"shapes-sd3 vae step {step}/{recipe.vae_steps}: loss {loss.item():.4f}")
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def reconstruction_score(vae, count: int = 256, seed: int = 99) -> float:
    """``shapes:geneval`` on the VAE's reconstructions (posterior mean) of ``count`` fresh rendered images with
    their captions: the ceiling of what a transformer on this VAE's latents can score (rendered data: 1.0)."""
    from ...rewards.geneval import GenevalReward

    images, captions = data.generate(count, seed=seed)
    recon = (vae.decode(encode_latents(vae, images), return_dict=False)[0] / 2.0 + 0.5).clamp(0.0, 1.0)
    values = GenevalReward()(recon, captions)
    return sum(v for v in values if v is not None) / len(values)


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Posterior means of ``images`` in [0, 1] (raw, before scaling)."""
    parts = [
        vae.encode(images[i : i + batch] * 2.0 - 1.0, return_dict=False)[0].mean for i in range(0, len(images), batch)
    ]
    return torch.cat(parts)


def assemble_pipeline(clip_dir: Path, vae, transformer):
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from transformers import CLIPModel, CLIPTextModelWithProjection

    tokenizer = load_tokenizer(clip_dir)
    clip = CLIPModel.from_pretrained(str(clip_dir))
    encoders = []
    for _ in range(2):
        encoder = CLIPTextModelWithProjection(text_config(len(tokenizer), tokenizer.eos_token_id))
        encoder.text_model.load_state_dict(clip.text_model.state_dict())
        encoder.text_projection.load_state_dict(clip.text_projection.state_dict())
        encoders.append(encoder.eval().requires_grad_(False))
    pipeline = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=encoders[0],
        tokenizer=tokenizer,
        text_encoder_2=encoders[1],
        tokenizer_2=tokenizer,
        # No T5: the pipeline takes None and pads its share of the joint embedding with zeros.
        text_encoder_3=None,  # pyright: ignore[reportArgumentType]
        tokenizer_3=None,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def caption_embeddings(pipeline, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The pipeline's own ``encode_prompt`` of each caption (T5 slot empty): (N, 2*16, 128), (N, 128)."""
    embeds, _, pooled, _ = pipeline.encode_prompt(
        prompt=captions,
        prompt_2=None,
        prompt_3=None,
        device=torch.device("cpu"),
        do_classifier_free_guidance=False,
        max_sequence_length=T5_TOKENS,
    )
    return embeds, pooled


def flow_matching_update(transformer, optimizer, x, noise, t, embeds, pooled) -> torch.Tensor:
    """One AdamW step of flow matching in SD3's convention (``x_t = (1 - t) x + t noise``, target ``noise - x``,
    ``timestep = 1000 t``), gradients clipped to norm 1; returns the loss."""
    x_t = (1.0 - t[:, None, None, None]) * x + t[:, None, None, None] * noise
    v = transformer(
        hidden_states=x_t,
        timestep=1000.0 * t,
        encoder_hidden_states=embeds,
        pooled_projections=pooled,
        return_dict=False,
    )[0]
    loss = (v - (noise - x)).pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
    optimizer.step()
    return loss


def train_transformer(
    pipeline,
    latents: torch.Tensor,
    caption_index: torch.Tensor,
    embeds: torch.Tensor,
    pooled: torch.Tensor,
    recipe: Recipe,
    seed: int,
    log=print,
) -> None:
    """Flow matching on cached latents; row ``-1`` of ``embeds``/``pooled`` is the empty caption."""
    transformer = pipeline.transformer
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=SD3_LR, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, SD3_LR, total_steps=recipe.sd3_steps, pct_start=0.05)
    transformer.train()
    null = embeds.shape[0] - 1
    with torch_threads(TRANSFORMER_THREADS):
        for step in range(recipe.sd3_steps):
            index = torch.randint(0, latents.shape[0], (recipe.sd3_batch,), generator=generator)
            x = latents[index]
            text = caption_index[index].clone()
            text[torch.rand(recipe.sd3_batch, generator=generator) < CAPTION_DROPOUT] = null
            noise = torch.randn(x.shape, generator=generator)
            t = torch.sigmoid(torch.randn(recipe.sd3_batch, generator=generator))
            loss = flow_matching_update(transformer, optimizer, x, noise, t, embeds[text], pooled[text])
            schedule.step()
            if step % 250 == 0 or step == recipe.sd3_steps - 1:
                log(f"shapes-sd3 transformer step {step}/{recipe.sd3_steps}: loss {loss.item():.4f}")
    transformer.eval().requires_grad_(False)


def build_shapes_sd3(directory: Path, clip_dir: Path, recipe: Recipe, seed: int = 0, log=print, vae=None) -> Path:
    """Train the VAE (unless given one trained by :func:`train_vae`), cache latents, train the transformer,
    ``save_pretrained`` the pipeline to ``directory``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    vae = vae if vae is not None else train_vae(recipe, seed, log)
    vae_seconds = time.perf_counter() - started
    vae_score = reconstruction_score(vae)
    log(f"shapes-sd3 vae: verifier on its reconstructions of rendered data {vae_score:.3f}")
    images, captions = data.generate(recipe.sd3_images, seed=3000 + seed)
    raw = encode_latents(vae, images)
    # SD3 stores latents as (z - shift) * scale with unit variance; decode inverts it (pipeline and SD3Policy).
    shift, scale = float(raw.mean()), float(1.0 / raw.std())
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    latents = (raw - shift) * scale
    transformer = new_transformer(text_config(2, 1).hidden_size, PROJECTION, recipe.sd3_layers)
    if recipe.sd3_dit_init:
        initialise_like_dit(transformer)
    pipeline = assemble_pipeline(clip_dir, vae, transformer)
    unique = sorted(set(captions))
    embeds, pooled = caption_embeddings(pipeline, unique + [""])
    caption_index = torch.tensor([unique.index(c) for c in captions])
    prepared = time.perf_counter()
    train_transformer(pipeline, latents, caption_index, embeds, pooled, recipe, seed, log)
    directory.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(str(directory))
    info = {
        "recipe": recipe.name,
        "max_sequence_length": T5_TOKENS,
        "vae_steps": recipe.vae_steps,
        "transformer_steps": recipe.sd3_steps,
        "transformer_layers": recipe.sd3_layers,
        "transformer_dit_init": recipe.sd3_dit_init,
        "transformer_threads": TRANSFORMER_THREADS,
        "vae_seconds": round(vae_seconds, 1),
        "vae_reconstruction_verifier": round(vae_score, 3),
        "transformer_seconds": round(time.perf_counter() - prepared, 1),
        "build_seconds": round(time.perf_counter() - started, 1),
        "build_cpu_seconds": round(time.process_time() - cpu_started, 1),
        "transformer_parameters": sum(p.numel() for p in pipeline.transformer.parameters()),
    }
    (directory / PIPELINE_INFO).write_text(json.dumps(info, indent=2))
    log(f"shapes-sd3 built in {info['build_seconds']} s")
    return directory


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
