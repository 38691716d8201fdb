"""Evaluation of checkpoints on held-out prompts with fixed noise: the numbers claims rest on.

Training metrics are per batch and noisy; an eval draws ``eval.samples_per_prompt`` (N) samples for
each held-out prompt j from seed ``eval.seed + j``, the same for every checkpoint of every job (the
seed does not depend on the job's own ``seed``), and scores them. For each checkpoint (and for the
reference, the adapter switched off, reported as step 0) it returns:

- ``reward/mean``, ``reward/std`` over all samples (the job's weighted rewards), ``reward/<name>`` per
  component when there are several, ``eval/<name>`` for each eval-only reward (``eval.rewards``);
- diversity: flows use the job's diversity measure (``rewards.image.build_diversity``: ClipDiversity
  for text-to-image, the even-digit spread for digits-even) per prompt group, averaged; LLMs report
  ``diversity`` (fraction of distinct completions per prompt), ``diversity/distinct_1`` and
  ``diversity/distinct_2`` (distinct word n-grams / all n-grams of a prompt's completions),
  ``diversity/token_overlap_dist`` (mean pairwise 1 - Jaccard overlap of the completions' word sets)
  and ``entropy`` (mean token entropy of the policy over its completions);
- divergence to the reference over **all** samples: LLMs ``kl`` = mean per-token k3 KL
  (``objectives.kl_k3``, the training definition, but no row skipped) and ``kl/seq_k1`` = mean over
  samples of ``sum_t (log pi - log pi_ref)`` (an unbiased estimate of the sequence KL); flows ``w2`` =
  mean ``||v_theta(x_t, t) - v_ref(x_t, t)||^2`` at ``x_t`` interpolated from the policy's own samples
  with fresh ``(noise, t)`` drawn as in training (the integrand of ORW-CFM-W2's bound), and
  ``w2/coupling`` = ``sqrt(mean ||x_theta(z) - x_ref(z)||^2)`` over the shared starting noise ``z``
  (an upper bound on W2 between the two sample distributions).

Every metric comes with the number of values it averages (``counts``). Nothing here touches a
database or a queue: the worker stores the returned points, the CLI writes them to a file.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import metrics as M
from . import objectives as O
from .config import JobConfig, PromptsConfig
from .data import PromptRow, load_prompts, repeat_columns
from .kinds import get_kind
from .progress import AUDIO_SAMPLE, IMAGE_SAMPLE, TEXT_SAMPLE
from .rewards import WeightedRewards
from .threads import thread_limit

if TYPE_CHECKING:
    from .trainers.llm import LMPolicy

REFERENCE_STEP = 0  # the reference (adapter off) is reported as step 0
# Metric names only evals produce (training logs the others under the same names).
KL_SEQ = "kl/seq_k1"
W2_COUPLING = "w2/coupling"
DISTINCT_1 = "diversity/distinct_1"
DISTINCT_2 = "diversity/distinct_2"
TOKEN_OVERLAP = "diversity/token_overlap_dist"
W2_NOISE_OFFSET = 1_000_003  # the (noise, t) draws of the flow W2 term use seed + this offset
_WORDS = re.compile(r"\w+|[^\w\s]")


@dataclass
class EvalPoint:
    """The eval of one checkpoint (``step``) or of the reference (``step`` 0, ``role`` reference)."""

    step: int
    role: str  # "reference" | "policy"
    metrics: dict[str, float]
    counts: dict[str, int]
    prompts: int
    samples_per_prompt: int
    held_out: bool  # False when the eval fell back to the training prompts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tally:
    """Sums and counts of the metrics of one eval, filled prompt by prompt."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    squares: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, values: Sequence[float] | Tensor) -> None:
        values = [float(v) for v in (values.tolist() if isinstance(values, Tensor) else values)]
        self.sums[name] = self.sums.get(name, 0.0) + sum(values)
        self.squares[name] = self.squares.get(name, 0.0) + sum(v * v for v in values)
        self.counts[name] = self.counts.get(name, 0) + len(values)

    def mean(self, name: str) -> float:
        return self.sums[name] / max(self.counts[name], 1)

    def std(self, name: str) -> float:
        """Sample standard deviation (Bessel) of everything added under ``name``."""
        n = self.counts[name]
        if n < 2:
            return 0.0
        variance = (self.squares[name] - self.sums[name] ** 2 / n) / (n - 1)
        return math.sqrt(max(variance, 0.0))

    def result(self) -> tuple[dict[str, float], dict[str, int]]:
        metrics = {name: self.mean(name) for name in self.sums}
        counts = dict(self.counts)
        metrics[M.REWARD_STD] = self.std(M.REWARD_MEAN)
        counts[M.REWARD_STD] = counts[M.REWARD_MEAN]
        return metrics, counts


# ----------------------------------------------------------------------------------------------
# Held-out prompts


def eval_rows(config: JobConfig) -> tuple[list[PromptRow], bool]:
    """The held-out prompts of a job and whether they are held out: ``eval.prompts``/``file``/``dataset``,
    else ``prompts.eval``, else the training prompts (``held_out`` False)."""
    ev = config.eval
    if ev.prompts or ev.file or ev.dataset:
        source = PromptsConfig(
            texts=ev.prompts,
            file=ev.file,
            dataset=ev.dataset,
            split=ev.split,
            column=config.prompts.column,
            limit=ev.limit,
        )
        return load_prompts(source), True
    if config.prompts.eval:
        rows = [PromptRow(text) for text in config.prompts.eval]
        return rows[: ev.limit] if ev.limit else rows, True
    rows = load_prompts(config.prompts)
    return rows[: ev.limit] if ev.limit else rows, False


def prompt_seed(config: JobConfig, index: int) -> int:
    """The noise seed of held-out prompt ``index``: the same for every checkpoint and every job."""
    return (config.eval.seed + index) % (2**31 - 1)


# ----------------------------------------------------------------------------------------------
# Text diversity (pure functions, tested by hand)


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams over all n-grams of ``texts`` (1 = no n-gram repeats; 0 when there are none)."""
    grams = [tuple(tokens[i : i + n]) for tokens in map(words, texts) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def token_overlap_distance(texts: Sequence[str]) -> float:
    """Mean over pairs of ``1 - |A & B| / |A | B|`` of the texts' word sets (two empty texts: distance 0)."""
    sets = [set(words(text)) for text in texts]
    pairs = list(itertools.combinations(sets, 2))
    if not pairs:
        return 0.0
    return sum(1.0 - (len(a & b) / len(a | b) if a | b else 1.0) for a, b in pairs) / len(pairs)


# ----------------------------------------------------------------------------------------------
# The entry point


def evaluate(config: JobConfig, checkpoints: Sequence[tuple[int, Path | None]]) -> list[EvalPoint]:
    """Evaluate each ``(step, adapter_dir)``; ``adapter_dir`` None is the reference (adapter off).

    The model is loaded once; every checkpoint sees the same prompts and the same noise."""
    with thread_limit(config):
        rows, held_out = eval_rows(config)
        evaluator = EVALUATORS[get_kind(config.kind).sample_kind](config, rows)
        points = []
        for step, adapter_dir in checkpoints:
            metrics, counts = evaluator.run(adapter_dir)
            points.append(
                EvalPoint(
                    step=REFERENCE_STEP if adapter_dir is None else int(step),
                    role="reference" if adapter_dir is None else "policy",
                    metrics=metrics,
                    counts=counts,
                    prompts=len(rows),
                    samples_per_prompt=config.eval.samples_per_prompt,
                    held_out=held_out,
                )
            )
        return points


def _device_and_dtype(config: JobConfig) -> tuple[torch.device, torch.dtype]:
    from .trainers.base import resolve_device, resolve_dtype

    device = resolve_device(config.model)
    return device, resolve_dtype(config.model, device)


def _score(rewards: WeightedRewards, extra: WeightedRewards | None, tally: _Tally, *args: Any, **columns: Any) -> None:
    total, parts = rewards(*args, **columns)
    tally.add(M.REWARD_MEAN, total)
    if len(parts) > 1:
        for label, values in parts.items():  # already reward/<name>
            tally.add(label, values)
    if extra is not None:
        for label, values in extra(*args, **columns)[1].items():
            tally.add("eval/" + label.removeprefix(M.REWARD_PREFIX), values)


class FlowEvaluator:
    """Samples from a flow policy with fixed starting noise per prompt; reward, diversity, W2."""

    def __init__(self, config: JobConfig, rows: list[PromptRow]) -> None:
        from .rewards.image import build_diversity
        from .trainers.flow import prepare_policy

        self.config = config
        self.rows = rows
        self.policy = prepare_policy(config, *_device_and_dtype(config))
        reward_kind = get_kind(config.kind).reward_kind
        self.rewards = WeightedRewards(config.rewards, reward_kind)
        self.extra = WeightedRewards(config.eval.rewards, reward_kind) if config.eval.rewards else None
        self.diversity = build_diversity(config.model.name_or_path, config.rewards)
        self._reference: dict[int, Tensor] = {}

    def _noise(self, index: int) -> Tensor:
        count = self.config.eval.samples_per_prompt
        generator = torch.Generator().manual_seed(prompt_seed(self.config, index))
        return torch.randn((count, *self.policy.latent_shape()), generator=generator, dtype=torch.float32)

    def _draw(self, cond: dict[str, Tensor], noise: Tensor, adapter: bool) -> Tensor:
        flow = self.config.flow
        with self.policy.eval_mode():
            return self.policy.sample(
                cond, torch.Generator(), flow.sample_steps, flow.guidance_scale, adapter=adapter, noise=noise
            )

    def _reference_latents(self, index: int, cond: dict[str, Tensor], noise: Tensor) -> Tensor:
        if index not in self._reference:
            self._reference[index] = self._draw(cond, noise, adapter=False)
        return self._reference[index]

    @torch.no_grad()
    def _velocity_gap(self, index: int, latents: Tensor, cond: dict[str, Tensor]) -> Tensor:
        """Per sample ``||v_theta - v_ref||^2`` at ``x_t`` from the samples, ``(noise, t)`` as in training."""
        flow = self.config.flow
        generator = torch.Generator().manual_seed(prompt_seed(self.config, index) + W2_NOISE_OFFSET)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
        t = O.sample_times(latents.shape[0], flow.t_sampling, flow.logit_mean, flow.logit_std, generator=generator).to(
            latents.device
        )
        x_t = O.interpolate(latents, noise, t)
        with self.policy.eval_mode():
            v = self.policy.velocity(x_t, t, cond, adapter=True)
            v_ref = self.policy.velocity(x_t, t, cond, adapter=False)
        return O.per_sample_mse(v, v_ref)

    def run(self, adapter_dir: Path | None) -> tuple[dict[str, float], dict[str, int]]:
        from .models.flow_policy import repeat_cond

        adapter = adapter_dir is not None
        if adapter:
            self.policy.load_adapter(Path(adapter_dir))
        count = self.config.eval.samples_per_prompt
        tally = _Tally()
        for index, row in enumerate(self.rows):
            cond = repeat_cond(self.policy.encode_prompts([row.prompt]), count)
            noise = self._noise(index)
            reference = self._reference_latents(index, cond, noise)
            latents = self._draw(cond, noise, adapter=True) if adapter else reference
            images = self.policy.decode(latents)
            _score(self.rewards, self.extra, tally, images, [row.prompt] * count, **repeat_columns([row], count))
            for name, value in self.diversity(images, count).items():
                tally.add(name, [value])
            if adapter:
                tally.add(M.W2, self._velocity_gap(index, latents, cond))
                gap = (latents.float() - reference.float()).pow(2).flatten(1).sum(dim=1)
                tally.add(W2_COUPLING, gap)
            else:
                tally.add(M.W2, [0.0] * count)
                tally.add(W2_COUPLING, [0.0] * count)
        metrics, counts = tally.result()
        metrics[W2_COUPLING] = math.sqrt(max(metrics[W2_COUPLING], 0.0))
        return metrics, counts


class TextEvaluator:
    """Completions from a causal LM with a fixed seed per prompt; reward, text diversity, entropy, KL."""

    def __init__(self, config: JobConfig, rows: list[PromptRow]) -> None:
        self.config = config
        self.rows = rows
        self.policy = self.make_policy(config)
        reward_kind = get_kind(config.kind).reward_kind
        self.rewards = WeightedRewards(config.rewards, reward_kind)
        self.extra = WeightedRewards(config.eval.rewards, reward_kind) if config.eval.rewards else None

    def make_policy(self, config: JobConfig) -> LMPolicy:
        from .trainers.llm import TextPolicy

        return TextPolicy(config, *_device_and_dtype(config))

    def reward_columns(self, row: PromptRow, count: int) -> dict[str, list]:
        return repeat_columns([row], count)

    @contextmanager
    def _seeded(self, seed: int) -> Iterator[None]:
        device = self.policy.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    @torch.no_grad()
    def run(self, adapter_dir: Path | None) -> tuple[dict[str, float], dict[str, int]]:
        from .models import causal_lm as C

        adapter = adapter_dir is not None
        if adapter:
            C.load_adapter_weights(self.policy.model, Path(adapter_dir))
        count = self.config.eval.samples_per_prompt
        tally = _Tally()
        self.policy.model.eval()
        for index, row in enumerate(self.rows):
            with self._seeded(prompt_seed(self.config, index)):
                rollouts = self.policy.sample_rows([row], count, adapter=adapter)
            texts = self.policy.texts(rollouts)
            _score(self.rewards, self.extra, tally, [row.prompt] * count, texts, **self.reward_columns(row, count))
            tally.add(M.DIVERSITY, [len(set(texts)) / len(texts)])
            tally.add(DISTINCT_1, [distinct_n(texts, 1)])
            tally.add(DISTINCT_2, [distinct_n(texts, 2)])
            tally.add(TOKEN_OVERLAP, [token_overlap_distance(texts)])
            mask = rollouts.completion_mask.float()
            logp, entropy = self.policy.logprobs(rollouts, adapter=adapter, with_entropy=True)
            assert entropy is not None  # asked for
            tally.add(M.ENTROPY, entropy[mask.bool()])
            if adapter:
                ref_logp, _ = self.policy.logprobs(rollouts, adapter=False)
                tally.add(M.KL, O.kl_k3(logp, ref_logp)[mask.bool()])
                tally.add(KL_SEQ, ((logp - ref_logp) * mask).sum(dim=1))
            else:
                tally.add(M.KL, [0.0] * int(mask.sum()))
                tally.add(KL_SEQ, [0.0] * count)
            tally.add("completion/mean_tokens", mask.sum(dim=1))
        return tally.result()


class AudioEvaluator(TextEvaluator):
    """The text evaluator on an audio-language model: each held-out row's clip and question."""

    def make_policy(self, config: JobConfig) -> LMPolicy:
        from .trainers.audio_lm import AudioPolicy

        return AudioPolicy(config, *_device_and_dtype(config))

    def reward_columns(self, row: PromptRow, count: int) -> dict[str, list]:
        columns = super().reward_columns(row, count)
        columns.pop(self.config.audio.column, None)
        return columns


# Evaluators by the kind's sample kind (kinds.KindSpec.sample_kind): images come from a FlowPolicy,
# texts from a causal LM, audio answers from an audio-language model.
EVALUATORS = {IMAGE_SAMPLE: FlowEvaluator, TEXT_SAMPLE: TextEvaluator, AUDIO_SAMPLE: AudioEvaluator}


def summary_line(point: EvalPoint, kind: str) -> str:
    """One readable line: step, reward, diversity and divergence with their sample counts."""
    divergence = get_kind(kind).divergence
    m, c = point.metrics, point.counts
    where = "reference" if point.role == "reference" else f"step {point.step}"
    return (
        f"{where}: reward {m[M.REWARD_MEAN]:.4f} +- {m[M.REWARD_STD]:.4f} (n={c[M.REWARD_MEAN]}), "
        f"diversity {m[M.DIVERSITY]:.4f} (n={c[M.DIVERSITY]}), {divergence} {m[divergence]:.5f} "
        f"(n={c[divergence]})"
    )
