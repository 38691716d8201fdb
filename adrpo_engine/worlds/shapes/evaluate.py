"""Evaluation of a shapes-world policy on fixed prompts and fixed noise (DESIGN section 8: claims rest on
eval, not on training batches).

For each prompt, ``samples`` images from seed ``seed + prompt index`` (the same starting noise for the
reference and every adapter), scored with

- ``verifier``: ``shapes:geneval`` mean over all images, plus ``verifier/<constraint>`` and
  ``verifier/strict`` (all constraints met);
- ``clip_score``: ``builtin:shapes-clip`` CLIP score (100 * cosine);
- ``diversity``: ClipDiversity with ``builtin:shapes-clip`` per prompt group, averaged;
- ``w2`` (policies with an adapter): mean ``||v_theta - v_ref||^2`` (per element, as the trainer's ``w2``) on the samples at fresh ``(noise, t)``,
  ``t`` uniform: the W2 bound's integrand, i.e. how far the adapter moved the velocity field.
"""

from __future__ import annotations

import torch

from ... import objectives as O
from ...models.flow_policy import FlowPolicy, repeat_cond
from ...rewards.geneval import GenevalReward
from ...rewards.image import clip_diversity, clip_embedder


def evaluate(
    policy: FlowPolicy,
    prompts: list[str],
    samples: int = 8,
    seed: int = 1234,
    steps: int = 10,
    guidance: float = 1.0,
    adapter: bool = True,
    chunk: int = 8,
) -> dict[str, float]:
    verifier = GenevalReward()
    embedder = clip_embedder("builtin:shapes-clip")
    scores: list[float] = []
    clip_scores: list[float] = []
    diversities: list[float] = []
    w2: list[float] = []
    breakdown: dict[str, list[float]] = {}
    with policy.eval_mode():
        for start in range(0, len(prompts), chunk):
            batch = prompts[start : start + chunk]
            latents = []
            for offset, prompt in enumerate(batch):
                cond = repeat_cond(policy.encode_prompts([prompt]), samples)
                generator = torch.Generator().manual_seed(seed + start + offset)
                latents.append(policy.sample(cond, generator, steps, guidance, adapter=adapter))
            latents = torch.cat(latents)
            images = policy.decode(latents)
            texts = [p for p in batch for _ in range(samples)]
            values = verifier(images, texts)
            scores += [0.0 if v is None else v for v in values]
            for key, value in verifier.last_breakdown.items():
                breakdown.setdefault(key.replace("geneval/", "verifier/"), []).append(value)
            cosine = (embedder.image_embeddings(images) * embedder.text_embeddings(texts)).sum(-1)
            clip_scores += (100.0 * cosine.clamp_min(0.0)).tolist()
            diversities.append(clip_diversity(embedder, images, samples) * len(batch))
            if adapter:
                w2.append(_w2(policy, latents, policy.encode_prompts(texts), seed + start) * len(texts))
    result = {
        "verifier": sum(scores) / len(scores),
        "clip_score": sum(clip_scores) / len(clip_scores),
        "diversity": sum(diversities) / len(prompts),
    }
    result.update({key: sum(v) / len(v) for key, v in breakdown.items()})
    if w2:
        result["w2"] = sum(w2) / len(scores)
    return result


@torch.no_grad()
def _w2(policy: FlowPolicy, latents: torch.Tensor, cond, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=generator)
    t = torch.rand(latents.shape[0], generator=generator)
    x_t = O.interpolate(latents, noise, t)
    v_theta, v_ref = policy.velocity(x_t, t, cond, adapter=True), policy.velocity(x_t, t, cond, adapter=False)
    return float(O.per_sample_mse(v_theta.float(), v_ref.float()).mean())
