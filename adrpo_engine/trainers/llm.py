"""ADRPO-GRPO for causal LMs (docs/algorithm.md, LLM flavour; docs/llm.md), and fixed-beta GRPO as the same code path.

One step, for ``P = prompts_per_step`` prompts and ``G = group_size`` completions each (``N = P * G``):

1. rollouts: ``N`` completions from the current policy (temperature, top-p, ``max_new_tokens``, stop at
   EOS), sampled with the LoRA update folded into the weights; completion masks cover the tokens up
   to and including EOS;
2. rewards (the job's weighted text rewards, TRL's signature), group advantages ``A`` (``adv_scale``),
   clipped ``a = clip(A, a_min, a_max)`` and ``beta_i = beta0 - a_i`` (``adrpo``) or ``beta0`` (``fixed``);
3. reference log-probs (adapter disabled, no grad) only for the rows with ``beta_i != 0`` when
   ``llm.skip_zero_beta_reference`` (a row with ``beta_i = 0`` has no KL term: ADRPO's best samples),
   for every row on ``llm.full_kl_every`` steps (so the logged ``kl`` is the whole batch's);
   old log-probs only when ``llm.num_iterations > 1`` (with one pass, ``rho = 1`` and the detached
   current log-probs stand in for them; with several, LoRA dropout is off in every pass);
4. ``llm.num_iterations`` passes, each one AdamW step over ``grad_accum`` micro-batches of rows:
   token loss ``-min(rho A, clip(rho) A) + beta_i * k3_KL`` (token or sequence-level ``rho``, the KL
   optionally times ``rho``), aggregated as TRL's ``grpo``, ``dapo``, ``bnpo`` or ``dr_grpo``
   (``objectives``), micro-batch losses weighted so their sum is the full-batch loss.

Everything random in a step comes from torch's global generator, seeded by the base loop with
``step_seed(seed, step)``, so 3 steps + resume + 3 steps equals 6 steps straight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from .. import metrics as M
from .. import objectives as O
from ..config import ConfigError, JobConfig
from ..data import PromptRow, PromptSampler, eval_prompts, load_prompts, repeat_columns
from ..models import causal_lm as C
from ..models import lm_sampling as S
from ..progress import TEXT_SAMPLE, Sample
from ..rewards import WeightedRewards
from ..sharding import ShardReport
from .base import BaseTrainer, TrainingError, group_generators, micro_batches

EVAL_PROMPTS = 4
SUMMARY_SAMPLES = 8  # completions per eval prompt in the end-of-run before/after summary
COMPLETION_LENGTH = "completion/mean_tokens"
COMPLETION_CLIPPED = "completion/clipped_frac"  # rows that hit max_new_tokens without EOS


class LMPolicy(Protocol):
    """What the LLM trainer and the text evaluator use of a policy: :class:`TextPolicy`, or one whose prompts
    are more than text (``trainers.audio_lm.AudioPolicy``)."""

    device: torch.device
    model: Any  # the PeftModel whose adapter is trained
    eos_ids: list[int]

    def sample_rows(
        self, rows: list[PromptRow], repeat: int, adapter: bool = True, uniforms: Tensor | None = None
    ) -> S.Rollouts: ...

    def texts(self, rollouts: S.Rollouts) -> list[str]: ...

    def logprobs(
        self, rollouts: S.Rollouts, adapter: bool, with_entropy: bool = False
    ) -> tuple[Tensor, Tensor | None]: ...


class TextPolicy:
    """A causal LM with a LoRA adapter, its tokenizer and the job's sampling settings."""

    def __init__(self, config: JobConfig, device: torch.device, dtype: torch.dtype) -> None:
        self.config = config
        self.device = device
        base, self.tokenizer = C.load_causal_lm(config.model, device, dtype)
        if config.model.gradient_checkpointing:
            C.enable_gradient_checkpointing(base)
        torch.manual_seed(config.seed)  # the adapter's init depends on the seed alone, not on what loading drew
        self.model = C.add_lora(base, config.lora)
        self.eos_ids = C.eos_token_ids(base, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        # Set when the frozen weights are sharded over the job's processes: decode in lockstep with the others.
        self.others_running: Callable[[bool], bool] | None = None
        if config.llm.chat_template and not getattr(self.tokenizer, "chat_template", None):
            # found now, before the run directory is written, not at the first rollout
            raise ConfigError(f"llm.chat_template: the tokenizer of {config.model.name_or_path!r} has no chat template")

    def encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        llm = self.config.llm
        return C.encode_prompts(self.tokenizer, prompts, self.device, llm.chat_template, llm.max_prompt_tokens)

    def sample_rows(
        self, rows: list[PromptRow], repeat: int, adapter: bool = True, uniforms: Tensor | None = None
    ) -> S.Rollouts:
        """``repeat`` completions of each prompt row (the trainer's call; audio policies read the rows' clips)."""
        return self.sample([row.prompt for row in rows], repeat, adapter, uniforms)

    def sample(
        self, prompts: list[str], repeat: int, adapter: bool = True, uniforms: Tensor | None = None
    ) -> S.Rollouts:
        """``repeat`` completions of each prompt (rows grouped per prompt); ``uniforms``: per-row draws
        (``lm_sampling.decode_loop``)."""
        ids, mask = self.encode(prompts)
        llm = self.config.llm
        return S.sample_with_settings(
            self.model,
            ids,
            mask,
            llm,
            eos_ids=self.eos_ids,
            pad_id=self.pad_id,
            repeat=repeat,
            adapter=adapter,
            uniforms=uniforms,
            decode=llm.decode,
            others_running=self.others_running,
        )

    def texts(self, rollouts: S.Rollouts) -> list[str]:
        return C.decode_completions(self.tokenizer, rollouts.completion_ids, rollouts.completion_mask)

    def logprobs(self, rollouts: S.Rollouts, adapter: bool, with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
        context = nullcontext() if adapter else self.model.disable_adapter()
        with context:
            return C.completion_logprobs(self.model, rollouts, self.config.llm.temperature, with_entropy)


def group_diversity(texts: list[str], group: int) -> float:
    """Mean over prompt groups of the fraction of distinct completions (1 = all different)."""
    groups = [texts[i : i + group] for i in range(0, len(texts), group)]
    return sum(len(set(g)) / len(g) for g in groups) / len(groups)


class LLMTrainer(BaseTrainer):
    def setup(self) -> None:
        cfg = self.config
        self.rows = load_prompts(cfg.prompts)
        self.rewards = WeightedRewards(cfg.rewards, "text")
        self.policy = self.make_policy()
        self.prompt_sampler = PromptSampler(self.rows, cfg.seed)
        self.eval_rows = eval_prompts(cfg.prompts, self.rows, count=EVAL_PROMPTS)
        self.init_optimizer(self.policy.model.parameters())

    def make_policy(self) -> LMPolicy:
        return TextPolicy(self.config, self.device, self.dtype)

    def shardable_module(self) -> torch.nn.Module:
        if not isinstance(self.policy, TextPolicy):  # the config refuses FSDP for other kinds
            return super().shardable_module()
        # The transformers model under the PeftModel: every call (forward, generate) goes through it.
        return self.policy.model.get_base_model()

    def shard_weights(self) -> ShardReport | None:
        report = super().shard_weights()
        if report is not None and isinstance(self.policy, TextPolicy):
            self.policy.others_running = self.dist.any  # every forward is a collective: decode in lockstep
        return report

    def reward_columns(self, rows: list[PromptRow], repeat: int) -> dict[str, list]:
        """The rows' columns the rewards get as keyword arguments (each row repeated ``repeat`` times)."""
        return repeat_columns(rows, repeat)

    # ---------------------------------------------------------------- one step

    def score(self, rows: list[PromptRow], texts: list[str], repeat: int) -> tuple[Tensor, dict[str, Tensor]]:
        prompts = [row.prompt for row in rows for _ in range(repeat)]
        total, parts = self.rewards(prompts, texts, **self.reward_columns(rows, repeat))
        if total.numel() != len(texts):
            raise TrainingError(f"a reward returned {total.numel()} values for {len(texts)} completions")
        if not torch.isfinite(total).all():
            raise TrainingError("a reward returned a non-finite value (NaN or inf); check the reward function")
        return total.view(len(rows), repeat), parts

    def coefficients(self, rewards: Tensor) -> tuple[Tensor, Tensor]:
        """Flat advantages ``A`` and coefficients ``beta_i`` (``N,``) of a ``(P, G)`` reward tensor."""
        cfg = self.config
        advantages = O.group_advantages(rewards, cfg.adv_scale)
        beta = O.adaptive_beta(O.clip_advantages(advantages, cfg.clip_low, cfg.clip_high), cfg.beta0, cfg.adaptive)
        return advantages.flatten().to(self.device), beta.flatten().to(self.device)

    def reference_rows(self, beta: Tensor) -> Tensor:
        """Rows that need reference log-probs: all of them, or only ``beta_i != 0`` (ADRPO's shortcut)."""
        if self.config.llm.skip_zero_beta_reference:
            return beta != 0
        return torch.ones_like(beta, dtype=torch.bool)

    @torch.no_grad()
    def frozen_logprobs(self, rollouts: S.Rollouts, rows: Tensor, adapter: bool) -> Tensor:
        """Log-probs ``(N, T)`` of the selected ``rows`` (NaN elsewhere), no grad, in micro-batches, without
        dropout (with ``num_iterations > 1`` the update passes run without it too, see :meth:`train_mode`)."""
        out = torch.full(rollouts.completion_ids.shape, float("nan"), device=self.device)
        index = rows.nonzero().flatten()
        if index.numel() == 0:  # e.g. fixed beta0 = 0: no row has a KL term
            return out
        self.policy.model.eval()
        for part in micro_batches(len(index), self.config.grad_accum):
            picked = index[part]
            out[picked] = self.policy.logprobs(rollouts.rows(picked), adapter=adapter)[0]
        return out

    def train_mode(self) -> None:
        """LoRA dropout on only with one pass per batch: with several, the old log-probs (no dropout) and the
        update would see different networks and the first pass would not be on-policy (TRL's disable_dropout)."""
        if self.config.llm.num_iterations == 1:
            C.lora_train_mode(self.policy.model)
        else:
            self.policy.model.eval()
        if self.config.model.gradient_checkpointing:
            C.checkpointed_layers_train_flag(self.policy.model, True)

    def loss_mask(self, rollouts: S.Rollouts) -> Tensor:
        """The completion mask, without the truncated rows when ``llm.mask_truncated_completions``."""
        mask = rollouts.completion_mask.float()
        if self.config.llm.mask_truncated_completions:
            mask = mask * self.ended(rollouts).float().unsqueeze(1)
        return mask

    def update(
        self,
        rollouts: S.Rollouts,
        advantages: Tensor,
        beta: Tensor,
        ref_logp: Tensor,
        has_ref: Tensor,
        old_logp: Tensor | None,
        first: bool,
    ) -> dict[str, float | Tensor]:
        """One optimizer step over micro-batches; returns the loss parts and clip sums (and, on the first pass,
        the KL and entropy sums over the completion tokens). With several processes the normalisers are the
        whole batch's (rows, loss tokens, micro-batches of every rank), so the ranks' losses sum to it."""
        cfg, llm = self.config, self.config.llm
        mask = self.loss_mask(rollouts)
        completion = rollouts.completion_mask.float()
        parts = micro_batches(mask.shape[0], cfg.grad_accum)
        world = self.dist.world_size
        rows, chunks = mask.shape[0] * world, len(parts) * world
        tokens = self.dist.sum({"tokens": float(mask.sum())})["tokens"]
        sums: dict[str, float] = dict.fromkeys(
            (
                "loss",
                "policy",
                "kl_all",
                "tokens_all",
                "kl_beta",
                "tokens_beta",
                "entropy",
                "low",
                "high",
                "region",
                "units",
            ),
            0.0,
        )
        seq_low, seq_high = [], []
        needs_entropy = first or llm.top_entropy_quantile < 1.0
        self.train_mode()
        for part in parts:
            chunk_mask = mask[part]
            logp, entropy = self.policy.logprobs(rollouts.rows(part), adapter=True, with_entropy=needs_entropy)
            logp_old = logp.detach() if old_logp is None else old_logp[part]
            # Rows without a reference pass have beta_i = 0: d = 0 gives KL exactly 0 there.
            logp_ref = torch.where(has_ref[part, None], ref_logp[part], logp.detach())
            kl = O.kl_k3(logp, logp_ref)
            token_mask = None
            if llm.top_entropy_quantile < 1.0:
                token_mask = O.high_entropy_mask(_computed(entropy), chunk_mask, llm.top_entropy_quantile)
            per_token, policy = O.grpo_token_loss(
                logp,
                logp_old,
                advantages[part],
                beta[part],
                kl,
                llm.eps_low,
                llm.clip_eps_high,
                mask=chunk_mask,
                level=llm.importance_sampling_level,
                kl_bias_correction=llm.kl_bias_correction,
                token_mask=token_mask,
            )
            # Weights that make the micro-batch losses sum to the full-batch aggregate (bnpo: TRL's local mean).
            share = O.micro_batch_weight(
                llm.loss_agg, chunk_mask.shape[0], float(chunk_mask.sum()), rows, tokens, chunks
            )
            loss = O.aggregate_tokens(per_token, chunk_mask, llm.loss_agg, llm.max_new_tokens) * share
            loss.backward()
            sums["loss"] += loss.item()
            sums["policy"] += (
                O.aggregate_tokens(policy.detach(), chunk_mask, llm.loss_agg, llm.max_new_tokens).item() * share
            )
            ratio = torch.exp(
                O.importance_log_weights(logp.detach(), logp_old, chunk_mask, llm.importance_sampling_level)
            )
            clipped = O.clip_fractions(ratio, advantages[part], chunk_mask, llm.eps_low, llm.clip_eps_high)
            for key in ("low", "high", "region", "units"):
                sums[key] += float(clipped[key])
            seq_low.append(clipped["seq_low"])
            seq_high.append(clipped["seq_high"])
            if first:
                self._add_divergence_sums(
                    sums, kl.detach(), _computed(entropy), completion[part], has_ref[part], beta[part] != 0
                )
        grad_norm = self.optimizer_step()
        sums = self.dist.sum(sums)
        result: dict[str, float | Tensor] = {
            M.LOSS: sums["loss"],
            M.POLICY_LOSS: sums["policy"],
            M.GRAD_NORM: grad_norm,
            **sums,
        }
        result["seq_low"], result["seq_high"] = (
            self.dist.gather(torch.cat(seq_low)),
            self.dist.gather(torch.cat(seq_high)),
        )
        return result

    @staticmethod
    def _add_divergence_sums(
        sums: dict[str, float], kl: Tensor, entropy: Tensor, completion: Tensor, has_ref: Tensor, beta_nonzero: Tensor
    ) -> None:
        """KL over the rows that have a reference (all of them on full-KL steps) and over beta_i != 0 rows;
        entropy over every completion token. Loss masks do not apply: these measure the samples."""
        for suffix, rows in (("all", has_ref), ("beta", has_ref & beta_nonzero)):
            picked = completion * rows[:, None]
            sums[f"kl_{suffix}"] += float((kl * picked).sum())
            sums[f"tokens_{suffix}"] += float(picked.sum())
        sums["entropy"] += float((entropy * completion).sum())

    def full_kl_step(self, step: int) -> bool:
        return (step - 1) % self.config.llm.full_kl_every == 0

    def sampling_draws(self, step: int, groups: slice) -> Tensor | None:
        """The rollout draws ``(rows, max_new_tokens)`` of this process's prompt groups, one generator per group
        (``base.group_generators``): a group's completions are the same on any rank, in any batch. None with
        ``llm.decode: generate`` (transformers' sampler draws from the global generator)."""
        cfg = self.config
        if cfg.llm.decode != "loop":
            return None
        generators = group_generators(cfg.seed, step, range(groups.start, groups.stop))
        shape = (cfg.group_size, cfg.llm.max_new_tokens)
        return torch.cat([torch.rand(shape, generator=g) for g in generators]).to(self.device)

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.config
        started = time.perf_counter()
        batch = self.prompt_sampler.batch(step, cfg.prompts_per_step)
        mine = self.dist.shard(len(batch))  # this process's whole prompt groups (all of them in one process)
        rows = batch[mine]
        rollouts = self.policy.sample_rows(rows, cfg.group_size, uniforms=self.sampling_draws(step, mine))
        texts = self.policy.texts(rollouts)
        own_rewards, parts = self.score(rows, texts, cfg.group_size)
        rewards = self.dist.gather(own_rewards)  # (P, G): the whole batch's, for advantages and metrics
        all_advantages, all_beta = self.coefficients(rewards)
        own = slice(mine.start * cfg.group_size, mine.stop * cfg.group_size)
        advantages, beta = all_advantages[own], all_beta[own]
        full_kl = self.full_kl_step(step)
        # On full-KL steps every row gets a reference (the beta_i = 0 ones only for the metric: 0 * KL adds
        # nothing to the loss or its gradient), so `kl` averages the same samples for every algorithm.
        has_ref = self.reference_rows(beta) | full_kl
        ref_logp = self.frozen_logprobs(rollouts, has_ref, adapter=False)
        old_logp = None
        if cfg.llm.num_iterations > 1:
            old_logp = self.frozen_logprobs(rollouts, torch.ones_like(has_ref), adapter=True)
        metrics = O.reward_stats(rewards, all_advantages)
        metrics.update(O.beta_stats(all_beta))
        metrics[M.FRAC_REWARD_ZERO_STD] = O.frac_zero_std(rewards)
        passes = [
            self.update(rollouts, advantages, beta, ref_logp, has_ref, old_logp, first=i == 0)
            for i in range(cfg.llm.num_iterations)
        ]
        lengths = rollouts.completion_mask.sum(dim=1).float()
        # Means over equal shares of rows: the mean over ranks is the whole batch's.
        own_means = {
            M.DIVERSITY: group_diversity(texts, cfg.group_size),
            COMPLETION_LENGTH: float(lengths.mean()),
            COMPLETION_CLIPPED: self.clipped_fraction(rollouts),
            M.KL_REF_FRAC: float(has_ref.float().mean()),
        }
        if len(parts) > 1:
            own_means.update({label: float(values.mean()) for label, values in parts.items()})
        metrics.update(self.dist.mean(own_means))
        completion_tokens = self.dist.sum({"tokens": float(lengths.sum())})["tokens"]
        metrics.update(self.pass_metrics(passes, full_kl, completion_tokens))
        elapsed = time.perf_counter() - started
        metrics.update(
            {
                M.LR: self.current_lr(),
                M.STEP_TIME: elapsed,
                M.SAMPLES_PER_S: rewards.numel() / max(elapsed, 1e-9),
                M.TOKENS_PER_S: completion_tokens / max(elapsed, 1e-9),
            }
        )
        return metrics

    @staticmethod
    def pass_metrics(passes: list[dict], full_kl: bool, completion_tokens: float) -> dict[str, float]:
        """The loss of the last pass; KL and entropy of the rollout policy (first pass); clip ratios over all
        passes. ``kl`` only when every row had a reference (never a 0 standing for "not measured")."""
        first, last = passes[0], passes[-1]
        out = {M.LOSS: last[M.LOSS], M.POLICY_LOSS: last[M.POLICY_LOSS], M.GRAD_NORM: last[M.GRAD_NORM]}
        out[M.ENTROPY] = first["entropy"] / max(completion_tokens, 1.0)
        if full_kl:
            out[M.KL] = first["kl_all"] / max(first["tokens_all"], 1.0)
        if first["tokens_beta"] > 0:
            out[M.KL_BETA_NONZERO] = first["kl_beta"] / first["tokens_beta"]
        units = max(sum(p["units"] for p in passes), 1.0)
        out[M.CLIP_LOW_MEAN] = sum(p["low"] for p in passes) / units
        out[M.CLIP_HIGH_MEAN] = sum(p["high"] for p in passes) / units
        out[M.CLIP_REGION_MEAN] = sum(p["region"] for p in passes) / units
        low = torch.cat([p["seq_low"] for p in passes])
        high = torch.cat([p["seq_high"] for p in passes])
        # rows without loss tokens (masked truncations) have no fraction (NaN), as in TRL's nanmin/nanmax
        low, high = low[~low.isnan()], high[~high.isnan()]
        out[M.CLIP_LOW_MIN] = float(low.min()) if low.numel() else 0.0
        out[M.CLIP_HIGH_MAX] = float(high.max()) if high.numel() else 0.0
        return out

    def ended(self, rollouts: S.Rollouts) -> Tensor:
        """Rows whose completion holds an EOS (the others hit max_new_tokens)."""
        return torch.isin(rollouts.completion_ids, torch.tensor(self.policy.eos_ids, device=self.device)).any(dim=1)

    def clipped_fraction(self, rollouts: S.Rollouts) -> float:
        return float((~self.ended(rollouts)).float().mean())

    # ---------------------------------------------------------------- adapters

    def save_adapter(self, directory: Path) -> None:
        C.save_adapter(self.policy.model, directory)

    def load_adapter(self, directory: Path) -> None:
        C.load_adapter_weights(self.policy.model, directory)

    # ---------------------------------------------------------------- samples

    def eval_completions(self, row: PromptRow, seed: int, count: int, adapter: bool) -> tuple[list[str], list[float]]:
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            rollouts = self.policy.sample_rows([row], count, adapter=adapter)
        texts = self.policy.texts(rollouts)
        rewards, _ = self.rewards([row.prompt] * count, texts, **self.reward_columns([row], count))
        return texts, rewards.tolist()

    def sample_media(self, index: int, row: PromptRow) -> tuple[str, str | None]:
        """The logged samples' kind and the clip of eval prompt ``index`` (text: none)."""
        return TEXT_SAMPLE, None

    def log_samples(self, step: int) -> list[Sample]:
        """Step 0: the reference (adapter off); later: the policy; the same seed per prompt at every step.
        The last step also logs the before/after summary over the eval prompts."""
        cfg = self.config
        role = "reference" if step == 0 else "policy"
        samples = []
        for index, row in enumerate(self.eval_rows):
            seed = cfg.seed + index
            texts, rewards = self.eval_completions(row, seed, cfg.llm.eval_samples, adapter=step > 0)
            kind, audio_path = self.sample_media(index, row)
            samples += [
                Sample(
                    step=step,
                    prompt=row.prompt,
                    seed=seed,
                    role=role,
                    text=text,
                    reward=reward,
                    extra={"index": k},
                    kind=kind,
                    audio_path=audio_path,
                )
                for k, (text, reward) in enumerate(zip(texts, rewards))
            ]
        if step == cfg.steps:
            self._log_before_after()
        return samples

    def _log_before_after(self) -> None:
        cfg = self.config
        means = {}
        for adapter in (False, True):
            scores = []
            for index, row in enumerate(self.eval_rows):
                scores += self.eval_completions(row, cfg.seed + index, SUMMARY_SAMPLES, adapter)[1]
            means[adapter] = sum(scores) / len(scores)
        self.log(
            f"eval ({len(self.eval_rows)} prompts x {SUMMARY_SAMPLES} samples, same seeds): "
            f"reward {means[False]:.3f} (reference) -> {means[True]:.3f} (fine-tuned)"
        )
        row = self.eval_rows[0]
        before = self.eval_completions(row, cfg.seed, 1, adapter=False)
        after = self.eval_completions(row, cfg.seed, 1, adapter=True)
        self.log(f"before: {row.prompt!r} -> {before[0][0]!r} [reward {before[1][0]:.3f}]")
        self.log(f"after:  {row.prompt!r} -> {after[0][0]!r} [reward {after[1][0]:.3f}]")


def _computed(entropy: Tensor | None) -> Tensor:
    """The entropy the pass asked logprobs for (with_entropy=True on every pass that reads it)."""
    if entropy is None:
        raise RuntimeError("token entropies were not computed on this pass")
    return entropy
