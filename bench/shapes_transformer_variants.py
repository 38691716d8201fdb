"""Diagnostic: train one variant of builtin:shapes-sd3's transformer on cached VAE latents and watch the
single-object verifier as it trains (issue 11: single-object prompts draw ragged blobs).

The CLIP is the full ``builtin:shapes-clip`` (built on first use under $ADRPO_DATA_DIR; set it, e.g. to
/tmp/sx-data, to keep this apart from ~/.adrpo). The VAE is trained once with ``sd3.train_vae`` and cached
with the latents (posterior means) of ``--images`` generated images in ``--cache-dir``; later runs with the
same VAE settings reuse it. Then the transformer variant trains by flow matching on the cached latents
(the loop of ``sd3.train_transformer`` plus the options below), and every ``--eval-every`` steps the script
prints the ``shapes:geneval`` mean on the 12 single-object prompts x 8 samples (fixed noise, seed 1234 +
prompt index as ``worlds.shapes.evaluate``; 10 Euler steps on the pipeline scheduler's sigmas, shift 3) at
CFG 1 and CFG 3, and writes a grid PNG (a row of 8 samples per single prompt, CFG 1) to ``--out``.
``--heldout`` adds the held-out compositional prompts (every 3rd, CFG 1, as the slow test) at the end.

``--oracle`` replaces the text conditioning by a fixed random code per caption (pooled vector and token
sequence), which removes the CLIP text tower as a cause. ``--init dit``, ``--pos-table fourier``, ``--layers`` etc.
change the model; ``--single-jitter`` / ``--radius`` / ``--only-single`` make easier diagnostic data (not the
world); ``--probe`` measures how much the velocity depends on the caption's shape and colour words; ``--sde`` samples
the evals with flow-GRPO's SDE. CPU seconds (``time.process_time``) of training
alone and of evaluation are printed apart. Example:

    ADRPO_DATA_DIR=/tmp/sx-data python bench/shapes_transformer_variants.py --steps 1000 --out /tmp/sx/base
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine.images import save_grid
from adrpo_engine.rewards.geneval import GenevalReward
from adrpo_engine.worlds.shapes import data, sd3
from adrpo_engine.worlds.shapes.builtins import shapes_clip_path
from adrpo_engine.worlds.shapes.clip import PROJECTION, TEXT_HIDDEN
from adrpo_engine.worlds.shapes.recipe import FULL

EVAL_SEED = 1234


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--heads", type=int, default=sd3.HEADS)
    parser.add_argument("--head-dim", type=int, default=sd3.HEAD_DIM)
    parser.add_argument("--layers", type=int, default=2, help="joint blocks (2: section 4's base; the recipe has 4)")
    parser.add_argument("--patch", type=int, default=sd3.PATCH)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=FULL.sd3_batch)
    parser.add_argument("--lr", type=float, default=sd3.SD3_LR)
    parser.add_argument("--warmup", type=float, default=0.05, help="OneCycle pct_start")
    parser.add_argument("--images", type=int, default=FULL.sd3_images, help="cached latents to train on")
    parser.add_argument("--oracle", action="store_true", help="random fixed code per caption instead of CLIP")
    parser.add_argument("--ema", type=float, default=0.0, help="EMA decay of the weights (0: off); eval both")
    parser.add_argument(
        "--time", choices=("logit-normal", "uniform"), default="logit-normal", help="training-time t sampling"
    )
    parser.add_argument("--t-mean", type=float, default=0.0, help="logit-normal mean")
    parser.add_argument("--t-std", type=float, default=1.0, help="logit-normal std")
    parser.add_argument("--vae-steps", type=int, default=FULL.vae_steps)
    parser.add_argument("--vae-kl", type=float, default=sd3.VAE_KL_WEIGHT)
    parser.add_argument(
        "--vae-blocks", type=int, nargs="+", default=list(sd3.VAE_BLOCKS), help="VAE block widths (n blocks: 2^(n-1) x)"
    )
    parser.add_argument("--latent-channels", type=int, default=sd3.LATENT_CHANNELS)
    parser.add_argument("--vae-images", type=int, default=FULL.vae_images)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--heldout", action="store_true", help="also score held-out compositional prompts at the end")
    parser.add_argument(
        "--pos-table",
        choices=("sincos", "fourier"),
        default="sincos",
        help="the transformer's position table: diffusers' sincos (base 10000) or grid_fourier_table",
    )
    parser.add_argument(
        "--init", choices=("default", "dit"), default="default", help="default init or sd3.initialise_like_dit"
    )
    parser.add_argument(
        "--single-jitter",
        type=float,
        help="single-object images centred within +- this many pixels; the cached VAE is reused",
    )
    parser.add_argument("--radius", type=float, help="with --single-jitter: every single object this half-extent")
    parser.add_argument("--only-single", action="store_true", help="train on the single-object images only")
    parser.add_argument("--probe", action="store_true", help="at the end: conditioning_probe (loss, dv by word)")
    parser.add_argument("--sde", type=float, default=0.0, help="evals sample the flow-GRPO SDE at this level (0: ODE)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/shapes-variants"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/shapes-variants/run"))
    parser.add_argument("--save", action="store_true", help="write the final transformer state to --out")
    parser.add_argument("--load", type=Path, help="start from a saved transformer state (--steps 0: evaluate only)")
    parser.add_argument("--sample-steps", type=int, default=10, help="Euler steps of the evals")
    parser.add_argument(
        "--renoise",
        type=float,
        nargs="*",
        default=[],
        help="at the end: noise real single-object latents to each t, integrate the ODE from there, verify",
    )
    return parser.parse_args(argv)


def grid_fourier_table(hidden: int, side: int, span: int) -> torch.Tensor:
    """A 2-D position table for a ``side`` x ``side`` token grid: per axis, sin and cos of the token index at
    ``hidden // 4`` frequencies from pi/2 (a 4-token wavelength) down to pi / (2 * span) (a half cycle over
    ``span`` tokens, the grid a default-sized image uses), so neighbouring tokens differ. Diffusers' base-10000
    sincos spends most frequencies on wavelengths far longer than a small grid: adjacent tokens of the 8 x 8
    grid then have cosine similarity 0.99."""
    count = hidden // 4
    frequencies = (math.pi / 2) * (1.0 / span) ** (torch.arange(count, dtype=torch.float64) / max(count - 1, 1))
    angles = torch.arange(side, dtype=torch.float64)[:, None] * frequencies[None, :]
    axis = torch.cat([angles.sin(), angles.cos()], dim=1)  # (side, hidden // 2)
    rows = axis[:, None, :].expand(side, side, -1)
    cols = axis[None, :, :].expand(side, side, -1)
    return torch.cat([rows, cols], dim=-1).reshape(1, side * side, hidden).float()


def use_grid_fourier_table(transformer) -> None:
    """Replace the transformer's position buffer (persistent: ``save_pretrained`` writes it, ``from_pretrained``
    reads it back) by :func:`grid_fourier_table` over its ``pos_embed_max_size`` grid."""
    embed = transformer.pos_embed
    span = transformer.config.sample_size // transformer.config.patch_size
    embed.pos_embed.copy_(grid_fourier_table(embed.pos_embed.shape[-1], embed.pos_embed_max_size, span))


def centre_single_objects(jitter: float, radius: float | None) -> None:
    """Make ``data.generate`` place a single object within +-``jitter`` px of the image centre (and, with
    ``radius``, at that half-extent); other templates keep their layouts. A diagnostic change of the data."""
    spread = data.layout

    def layout(prompt: data.Prompt, rng, tries: int = 200):
        if prompt.template != "single":
            return spread(prompt, rng, tries)
        ((obj, _),) = prompt.objects
        r = rng.uniform(data.MIN_RADIUS, data.MAX_RADIUS)  # drawn even with ``radius``: the same draws follow
        centre = data.IMAGE_SIDE / 2
        x, y = centre + rng.uniform(-jitter, jitter), centre + rng.uniform(-jitter, jitter)
        return [data.Placed(obj, x, y, radius if radius is not None else r)]

    data.layout = layout


def vae_and_latents(args: argparse.Namespace):
    """The VAE (shift/scale set from the latents, as ``build_shapes_sd3`` does), the scaled latents and captions;
    cached in ``--cache-dir`` by VAE settings."""
    # sd3.new_vae / new_transformer read these at call time; the defaults keep the cache names of earlier runs.
    sd3.VAE_BLOCKS, sd3.LATENT_CHANNELS = tuple(args.vae_blocks), args.latent_channels
    variant = (
        ""
        if sd3.VAE_BLOCKS == (16, 32) and args.latent_channels == 4
        else (f"-b{'x'.join(map(str, args.vae_blocks))}-c{args.latent_channels}")
    )
    key = f"vae-s{args.vae_steps}-kl{args.vae_kl:g}-n{args.vae_images}-lat{args.images}-seed{args.seed}{variant}.pt"
    path = args.cache_dir / key
    vae = sd3.new_vae()
    if path.is_file():
        cached = torch.load(path, weights_only=False)
        vae.load_state_dict(cached["vae"])
        vae.register_to_config(shift_factor=cached["shift"], scaling_factor=cached["scale"])
        print(f"loaded {path} (VAE reconstruction verifier {cached['recon_verifier']:.3f})", flush=True)
        return vae.eval().requires_grad_(False), cached["latents"], cached["captions"]
    sd3.VAE_KL_WEIGHT = args.vae_kl  # read by sd3.train_vae at call time
    recipe = dataclasses.replace(FULL, vae_steps=args.vae_steps, vae_images=args.vae_images, sd3_images=args.images)
    cpu = time.process_time()
    vae = sd3.train_vae(recipe, args.seed)
    vae_cpu = time.process_time() - cpu
    recon = sd3.reconstruction_score(vae)
    images, captions = data.generate(recipe.sd3_images, seed=3000 + args.seed)
    raw = sd3.encode_latents(vae, images)
    shift, scale = float(raw.mean()), float(1.0 / raw.std())
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    latents = (raw - shift) * scale
    print(f"VAE trained: {vae_cpu:.1f} CPU s, reconstruction verifier {recon:.3f}", flush=True)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "vae": vae.state_dict(),
            "shift": shift,
            "scale": scale,
            "latents": latents,
            "captions": captions,
            "recon_verifier": recon,
            "vae_cpu_s": vae_cpu,
        },
        path,
    )
    return vae, latents, captions


class Conditioning:
    """Token sequence and pooled vector per caption: the pipeline's CLIP ``encode_prompt`` or, with ``oracle``,
    a fixed random code per caption (same shapes and per-element scale as CLIP's)."""

    def __init__(self, pipeline, captions: list[str], oracle: bool, seed: int) -> None:
        self.pipeline = pipeline
        self.oracle = oracle
        self.names = sorted(set(captions)) + [""]
        self.embeds, self.pooled = sd3.caption_embeddings(pipeline, self.names)
        if oracle:
            generator = torch.Generator().manual_seed(10_000 + seed)
            self.embeds = torch.randn(self.embeds.shape, generator=generator) * self.embeds.std()
            self.pooled = torch.randn(self.pooled.shape, generator=generator) * self.pooled.std()
        self.row = {name: i for i, name in enumerate(self.names)}

    def index(self, captions: list[str]) -> torch.Tensor:
        return torch.tensor([self.row[c] for c in captions])

    def of(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [p for p in prompts if p not in self.row]
        if missing and self.oracle:
            raise ValueError(f"--oracle has no code for captions outside the training data: {missing[:3]}")
        if missing:
            embeds, pooled = sd3.caption_embeddings(self.pipeline, missing)
            for name, e, p in zip(missing, embeds, pooled):
                self.row[name] = len(self.names)
                self.names.append(name)
                self.embeds = torch.cat([self.embeds, e[None]])
                self.pooled = torch.cat([self.pooled, p[None]])
        rows = self.index(prompts)
        return self.embeds[rows], self.pooled[rows]


def time_grid(pipeline, steps: int) -> list[float]:
    pipeline.scheduler.set_timesteps(steps, device="cpu")
    return pipeline.scheduler.sigmas.float().tolist()


def velocity(transformer, x_t: torch.Tensor, timestep: torch.Tensor, embeds, pooled) -> torch.Tensor:
    return transformer(
        hidden_states=x_t, timestep=timestep, encoder_hidden_states=embeds, pooled_projections=pooled, return_dict=False
    )[0]


@torch.no_grad()
def sample(
    transformer, cond, null, noise: torch.Tensor, grid: list[float], guidance: float, sde: float = 0.0
) -> torch.Tensor:
    """Euler from t = 1 to 0 with ``v = v_null + g (v_cond - v_null)`` (one call when g = 1); ``sde`` > 0: the
    SDE of :func:`sde_step` at that noise level instead of the ODE (the last step stays deterministic)."""
    embeds, pooled = cond
    batch = noise.shape[0]
    if guidance != 1.0:
        embeds = torch.cat([null[0].expand(batch, -1, -1), embeds])
        pooled = torch.cat([null[1].expand(batch, -1), pooled])
    x = noise
    for t_now, t_next in zip(grid[:-1], grid[1:]):
        x_in = x if guidance == 1.0 else torch.cat([x, x])
        v = velocity(transformer, x_in, torch.full((x_in.shape[0],), 1000.0 * t_now), embeds, pooled)
        if guidance != 1.0:
            v = v[:batch] + guidance * (v[batch:] - v[:batch])
        x = x + (t_next - t_now) * v if not sde or t_next == 0.0 else sde_step(x, v, t_now, t_next, grid[1], sde)
    return x


def sde_step(x: torch.Tensor, v: torch.Tensor, t_now: float, t_next: float, t_cap: float, level: float) -> torch.Tensor:
    """Flow-GRPO's SDE step (same marginals as the ODE): std ``level * sqrt(t / (1 - t))`` (t = 1 read as the
    grid's second time), drift corrected by the score implied by ``v``; fresh noise from the global generator."""
    dt = t_next - t_now  # negative
    std = level * math.sqrt(t_now / (1.0 - (t_cap if t_now == 1.0 else t_now)))
    mean = x * (1 + std**2 / (2 * t_now) * dt) + v * (1 + std**2 * (1 - t_now) / (2 * t_now)) * dt
    return mean + std * math.sqrt(-dt) * torch.randn_like(x)


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    latents = latents / vae.config.scaling_factor + vae.config.shift_factor
    return (vae.decode(latents, return_dict=False)[0] / 2 + 0.5).clamp(0.0, 1.0)


def score(
    transformer, vae, conditioning: Conditioning, prompts, samples, guidance, grid, sde: float = 0.0
) -> tuple[dict, list]:
    """Verifier mean and breakdown over ``prompts`` x ``samples`` (noise seed EVAL_SEED + prompt index)."""
    verifier = GenevalReward()
    null = conditioning.of([""])
    values: list[float] = []
    breakdown: dict[str, list[float]] = {}
    rows = []
    for start in range(0, len(prompts), 6):
        chunk = prompts[start : start + 6]
        seeds = [EVAL_SEED + start + i for i in range(len(chunk))]
        shape = (samples, *cached_shape(vae))
        noise = torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
        texts = [p for p in chunk for _ in range(samples)]
        images = decode(vae, sample(transformer, conditioning.of(texts), null, noise, grid, guidance, sde))
        rows += list(images.split(samples))
        values += [0.0 if v is None else v for v in verifier(images, texts)]
        for key, value in verifier.last_breakdown.items():
            breakdown.setdefault(key.removeprefix("geneval/"), []).append(value * len(texts))
    result = {"verifier": sum(values) / len(values)}
    result.update({key: sum(v) / len(values) for key, v in breakdown.items()})
    return result, rows


def single_rows(captions: list[str]) -> list[int]:
    """Indices of the single-object captions."""
    singles = set(data.single_prompts())
    return [i for i, c in enumerate(captions) if c in singles]


def renoise_score(transformer, vae, conditioning: Conditioning, latents, captions, t0: float, grid, count=96):
    """Verifier on ODE samples started from real single-object latents noised to ``t0`` (the grid's times below
    ``t0``, CFG 1): where along t the model stops forming shapes it is given the layout of."""
    rows = single_rows(captions)[-count:]
    texts = [captions[i] for i in rows]
    noise = torch.randn(latents[rows].shape, generator=torch.Generator().manual_seed(EVAL_SEED))
    x_t = (1.0 - t0) * latents[rows] + t0 * noise
    times = [t0] + [t for t in grid if t < t0]
    images = decode(vae, sample(transformer, conditioning.of(texts), conditioning.of([""]), x_t, times, 1.0))
    verifier = GenevalReward()
    values = [0.0 if v is None else v for v in verifier(images, texts)]
    return {"verifier": sum(values) / len(values), **verifier.last_breakdown}


@torch.no_grad()
def conditioning_probe(transformer, vae, conditioning: Conditioning, latents, captions, count: int = 192) -> dict:
    """On real single-object latents noised to t (one noise draw): the flow-matching loss, the verifier on the
    one-step estimate ``x_t - t v`` decoded, and how far ``v`` moves (mean squared change, per element) when
    the caption's shape word (circle <-> square) or colour word (red <-> blue) is swapped: how much of the
    text the model uses for geometry and for colour."""
    rows = single_rows(captions)[-count:]
    x0, texts = latents[rows], [captions[i] for i in rows]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(EVAL_SEED))
    verifier = GenevalReward()
    out = {}
    for t0 in (0.3, 0.5, 0.7, 0.9):
        t = torch.full((len(rows),), 1000.0 * t0)
        x_t = (1.0 - t0) * x0 + t0 * noise

        v = velocity(transformer, x_t, t, *conditioning.of(texts))
        values = verifier(decode(vae, x_t - t0 * v), texts)
        row = {
            "loss": (v - (noise - x0)).pow(2).mean().item(),
            "one_step_verifier": sum(0.0 if x is None else x for x in values) / len(values),
        }
        for name, (a, b) in {"shape": ("circle", "square"), "colour": ("red", "blue")}.items():
            swapped = [c.replace(a, "@").replace(b, a).replace("@", b) for c in texts]
            moved = [i for i, (c, w) in enumerate(zip(texts, swapped)) if c != w]
            row[f"dv_{name}"] = (
                (velocity(transformer, x_t, t, *conditioning.of(swapped)) - v)[moved].pow(2).mean().item()
            )
        out[f"t{t0:g}"] = {k: round(x, 4) for k, x in row.items()}
    return out


def cached_shape(vae) -> tuple[int, int, int]:
    side = data.IMAGE_SIDE // (2 ** (len(vae.config.block_out_channels) - 1))
    return (vae.config.latent_channels, side, side)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}}), flush=True)
    clip_dir = shapes_clip_path(FULL)
    vae, latents, captions = vae_and_latents(args)
    if args.single_jitter is not None:
        centre_single_objects(args.single_jitter, args.radius)
        images, captions = data.generate(args.images, seed=3000 + args.seed)
        shift, scale = vae.config["shift_factor"], vae.config["scaling_factor"]
        latents = (sd3.encode_latents(vae, images) - shift) * scale
    if args.only_single:
        keep = single_rows(captions)
        latents, captions = latents[keep], [captions[i] for i in keep]
    transformer = sd3.new_transformer(
        TEXT_HIDDEN, PROJECTION, args.layers, heads=args.heads, head_dim=args.head_dim, patch=args.patch
    )
    if args.init == "dit":
        sd3.initialise_like_dit(transformer)
    if args.pos_table == "fourier":
        use_grid_fourier_table(transformer)
    parameters = sum(p.numel() for p in transformer.parameters())
    pipeline = sd3.assemble_pipeline(clip_dir, vae, transformer)
    conditioning = Conditioning(pipeline, captions, args.oracle, args.seed)
    caption_index = conditioning.index(captions)
    null_row = conditioning.row[""]
    grid = time_grid(pipeline, args.sample_steps)
    singles = data.single_prompts()
    if args.load:
        transformer.load_state_dict(torch.load(args.load))
    ema = copy.deepcopy(transformer).eval().requires_grad_(False) if args.ema > 0 else None
    print(f"transformer: {parameters} parameters; {len(latents)} latents", flush=True)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.lr, total_steps=max(args.steps, 1), pct_start=args.warmup
    )
    train_cpu = eval_cpu = 0.0
    history = []
    loss = torch.zeros(())
    if args.steps == 0:
        for guidance in (1.0, 3.0):
            result, rows = score(
                transformer.eval(), vae, conditioning, singles, args.eval_samples, guidance, grid, args.sde
            )
            print(json.dumps({f"loaded_cfg{guidance:g}": {k: round(v, 3) for k, v in result.items()}}), flush=True)
            save_grid(rows, args.out / f"grid-loaded-cfg{guidance:g}.png")
    for step in range(1, args.steps + 1):
        started = time.process_time()
        transformer.train()
        index = torch.randint(0, latents.shape[0], (args.batch,), generator=generator)
        x = latents[index]
        text = caption_index[index].clone()
        text[torch.rand(args.batch, generator=generator) < sd3.CAPTION_DROPOUT] = null_row
        noise = torch.randn(x.shape, generator=generator)
        if args.time == "uniform":
            t = torch.rand(args.batch, generator=generator)
        else:
            t = torch.sigmoid(args.t_mean + args.t_std * torch.randn(args.batch, generator=generator))
        loss = sd3.flow_matching_update(
            transformer, optimizer, x, noise, t, conditioning.embeds[text], conditioning.pooled[text]
        )
        schedule.step()
        if ema is not None:
            with torch.no_grad():
                for e, p in zip(ema.parameters(), transformer.parameters()):
                    e.lerp_(p, 1.0 - args.ema)
        train_cpu += time.process_time() - started
        if step % args.eval_every and step != args.steps:
            continue
        started = time.process_time()
        row: dict = {"step": step, "loss": round(loss.item(), 4), "train_cpu_s": round(train_cpu, 1)}
        models = [("raw", transformer.eval())] + ([("ema", ema)] if ema is not None else [])
        for name, model in models:
            for guidance in (1.0, 3.0):
                result, rows = score(model, vae, conditioning, singles, args.eval_samples, guidance, grid, args.sde)
                row[f"{name}_cfg{guidance:g}"] = round(result["verifier"], 3)
                row[f"{name}_cfg{guidance:g}_detail"] = {k: round(v, 3) for k, v in result.items()}
                if guidance == 1.0:
                    save_grid(rows, args.out / f"grid-{name}-step{step:05d}.png")
        eval_cpu += time.process_time() - started
        row["eval_cpu_s"] = round(eval_cpu, 1)
        history.append(row)
        print(json.dumps(row), flush=True)
    final = ema if ema is not None else transformer.eval()
    if args.heldout and not args.oracle:
        prompts = data.compositional_prompts(held_out=True)[::3]
        result, _ = score(final, vae, conditioning, prompts, 8, 1.0, grid, args.sde)
        print(json.dumps({"heldout_cfg1": {k: round(v, 3) for k, v in result.items()}}), flush=True)
        history.append({"heldout_cfg1": result})
    if args.save:
        torch.save(final.state_dict(), args.out / "transformer.pt")
    if args.probe:
        print(json.dumps({"probe": conditioning_probe(final, vae, conditioning, latents, captions)}), flush=True)
    for t0 in args.renoise:
        result = renoise_score(final, vae, conditioning, latents, captions, t0, grid)
        print(json.dumps({f"renoise_t{t0:g}": {k: round(v, 3) for k, v in result.items()}}), flush=True)
    summary = {"parameters": parameters, "train_cpu_s": round(train_cpu, 1), "eval_cpu_s": round(eval_cpu, 1)}
    print(json.dumps(summary), flush=True)
    (args.out / "history.json").write_text(json.dumps({"args": vars(args), "history": history, **summary}, default=str))
    if not math.isfinite(loss.item()):
        raise SystemExit("loss diverged")


if __name__ == "__main__":
    main()
