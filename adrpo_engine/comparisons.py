"""Side by side: the reference (adapter off) and a fine-tuned adapter on one prompt with one seed.

The studio's Compare page runs these on a worker (``runner.compare`` picks the kind's comparer from
``kinds``). Both start from the same seed for the two roles, so the only difference is the adapter; an
``adapter_dir`` of None means an untrained adapter, i.e. the reference twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoints import checkpoint_step
from .config import ConfigError, JobConfig
from .data import PromptRow, load_prompts, repeat_columns
from .images import images_to_pngs
from .kinds import get_kind
from .progress import AUDIO_SAMPLE, IMAGE_SAMPLE, TEXT_SAMPLE, Sample
from .rewards import WeightedRewards
from .threads import thread_limit
from .trainers.base import resolve_device, resolve_dtype

ROLES = (("reference", False), ("policy", True))


def compare_images(
    config: JobConfig, adapter_dir: str | Path | None, prompt: str, seed: int, num_samples: int, out_dir: str | Path
) -> list[Sample]:
    """``num_samples`` images per role from the same starting noise. PNGs go to
    ``out_dir/reference-K.png`` and ``out_dir/policy-K.png``; ``image_path`` is absolute."""
    from .trainers.flow import generate_images, prepare_policy

    out_dir = Path(out_dir)
    with thread_limit(config):
        out_dir.mkdir(parents=True, exist_ok=True)
        device = resolve_device(config.model)
        policy = prepare_policy(config, device, resolve_dtype(config.model, device))
        if adapter_dir is not None:
            policy.load_adapter(Path(adapter_dir))
        rewards_fn = WeightedRewards(config.rewards, get_kind(config.kind).reward_kind)
        step = checkpoint_step(adapter_dir) or 0
        samples: list[Sample] = []
        for role, adapter in ROLES:
            _, images = generate_images(policy, config, prompt, seed, num_samples, adapter=adapter)
            rewards, _ = rewards_fn(images, [prompt] * num_samples)
            paths = [out_dir / f"{role}-{k}.png" for k in range(num_samples)]
            images_to_pngs(images, paths)
            notes = policy.describe_images(images) or [None] * num_samples  # e.g. "looks like 4 (97%)"
            samples += [
                Sample(
                    step=step,
                    prompt=prompt,
                    seed=seed,
                    kind=IMAGE_SAMPLE,
                    role=role,
                    text=note,
                    image_path=str(path.resolve()),
                    reward=reward,
                    extra={"index": k},
                )
                for k, (path, reward, note) in enumerate(zip(paths, rewards.tolist(), notes))
            ]
        return samples


def compare_texts(
    config: JobConfig, adapter_dir: str | Path | None, prompt: str, seed: int, num_samples: int, out_dir: str | Path
) -> list[Sample]:
    """``num_samples`` completions per role with their rewards; also written to ``out_dir/comparison.json``."""
    from .models.causal_lm import load_adapter_weights
    from .trainers.llm import TextPolicy

    out_dir = Path(out_dir)
    with thread_limit(config):
        device = resolve_device(config.model)
        policy = TextPolicy(config, device, resolve_dtype(config.model, device))
        if adapter_dir is not None:
            load_adapter_weights(policy.model, Path(adapter_dir))
        rewards_fn = WeightedRewards(config.rewards, get_kind(config.kind).reward_kind)
        row = _row_for(config, prompt)
        step = checkpoint_step(adapter_dir) or 0
        samples: list[Sample] = []
        for role, adapter in ROLES:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed)
                texts = policy.texts(policy.sample([prompt], num_samples, adapter=adapter))
            try:
                rewards = rewards_fn([prompt] * num_samples, texts, **repeat_columns([row], num_samples))[0].tolist()
            except ConfigError:  # a column reward on a prompt that is not in the job's data
                rewards = [None] * num_samples
            samples += [
                Sample(
                    step=step,
                    prompt=prompt,
                    seed=seed,
                    kind=TEXT_SAMPLE,
                    role=role,
                    text=text,
                    reward=reward,
                    extra={"index": k},
                )
                for k, (text, reward) in enumerate(zip(texts, rewards))
            ]
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "comparison.json").write_text(json.dumps([s.to_dict() for s in samples], indent=2))
        return samples


def compare_audio(
    config: JobConfig, adapter_dir: str | Path | None, prompt: str, seed: int, num_samples: int, out_dir: str | Path
) -> list[Sample]:
    """``num_samples`` answers per role to one of the job's (clip, question) rows, the row whose question is
    ``prompt``; the clip is written once to ``out_dir/clip.wav`` (every sample's ``audio_path``, absolute)
    and the samples to ``out_dir/comparison.json``."""
    from .audio_io import write_wav
    from .models.causal_lm import load_adapter_weights
    from .trainers.audio_lm import AudioPolicy

    out_dir = Path(out_dir)
    with thread_limit(config):
        row = _row_for(config, prompt)
        if config.audio.column not in row.columns:
            raise ConfigError(f"prompt: {prompt[:80]!r} is not a question of this job's audio prompts")
        device = resolve_device(config.model)
        policy = AudioPolicy(config, device, resolve_dtype(config.model, device))
        if adapter_dir is not None:
            load_adapter_weights(policy.model, Path(adapter_dir))
        rewards_fn = WeightedRewards(config.rewards, get_kind(config.kind).reward_kind)
        clip = write_wav(out_dir / "clip.wav", policy.clip(row), policy.sampling_rate).resolve()
        columns = repeat_columns([row], num_samples)
        columns.pop(config.audio.column, None)
        step = checkpoint_step(adapter_dir) or 0
        samples: list[Sample] = []
        for role, adapter in ROLES:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed)
                texts = policy.texts(policy.sample_rows([row], num_samples, adapter=adapter))
            rewards = rewards_fn([prompt] * num_samples, texts, **columns)[0].tolist()
            samples += [
                Sample(
                    step=step,
                    prompt=prompt,
                    seed=seed,
                    kind=AUDIO_SAMPLE,
                    role=role,
                    text=text,
                    audio_path=str(clip),
                    reward=reward,
                    extra={"index": k},
                )
                for k, (text, reward) in enumerate(zip(texts, rewards))
            ]
        (out_dir / "comparison.json").write_text(json.dumps([s.to_dict() for s in samples], indent=2))
        return samples


def _row_for(config: JobConfig, prompt: str) -> PromptRow:
    """The job's prompt row with this text (so column rewards such as answer_match get their reference),
    else a bare row."""
    try:
        for row in load_prompts(config.prompts):
            if row.prompt == prompt:
                return row
    except ConfigError:
        pass
    return PromptRow(prompt)
