"""One GRPO training step: our LLMTrainer vs TRL's GRPOTrainer, side by side in one process (CPU).

Same model (a 4-layer, hidden-256 Qwen2 built from config, random weights, a locally trained byte-level
BPE tokenizer), same 4 prompts x G = 8 completions x 64 new tokens, LoRA r16 on q/k/v/o, fixed beta 0.04
(TRL: ``beta=0.04, loss_type="grpo"`` set explicitly; its defaults are 0.0 and "dapo"), temperature 1,
one optimisation pass per rollout batch, same reward function. Reports the median step time of each
over ``--steps`` steps (after a warm-up step), their ratio, and ours with ADRPO vs fixed beta (ADRPO
skips the reference forward for rows with beta_i = 0; ``adrpo-full-ref`` computes it for every row, to
isolate the cost of the adaptive coefficient itself). The runners take turns, one step each per round,
so a load change on the shared machine hits all of them. Then a breakdown of our step: sampling (folded
LoRA + KV-cached loop vs. ``generate`` with the adapter active), reference and policy passes.

    OMP_NUM_THREADS=1 python bench/bench_llm_step.py            # ~3-5 min on 2 busy cores
    python bench/bench_llm_step.py --steps 7 --threads 2

Timings are noisy on shared machines: compare ratios from one run, never absolute times across runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrpo_engine.config import validate_config  # noqa: E402
from adrpo_engine.models import lm_sampling as S  # noqa: E402
from adrpo_engine.models.tiny_lm import TEMPLATES, TOPICS, corpus_lines, train_tokenizer  # noqa: E402
from adrpo_engine.progress import RecordingSink  # noqa: E402
from adrpo_engine.trainers.llm import LLMTrainer, TextPolicy  # noqa: E402

GROUP = 8
PROMPTS = 4
NEW_TOKENS = 64
BETA = 0.04
LR = 1e-4
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def length_reward(prompts: list[str], completions: list[str], **_) -> list[float]:
    """Rewards that vary within a group (random weights: lengths differ) so advantages are not all 0."""
    return [float(len(text) % 17) / 17.0 for text in completions]


def trl_length_reward(prompts: list[str], completions: list[str], **kwargs) -> list[float | None]:
    """:func:`length_reward` typed as TRL's reward functions are (None: no reward for a completion)."""
    return [*length_reward(prompts, completions, **kwargs)]


def build_model(folder: Path) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tokenizer(corpus_lines(2000))
    eos_id = tokenizer.eos_token_id  # the tokenizer's one special token, also its pad token
    if not isinstance(eos_id, int):
        raise RuntimeError("the trained tokenizer has no single end-of-text id")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        bos_token_id=eos_id,
    )
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def prompt_texts() -> list[str]:
    texts = [template.format(topic=topic) for topic in TOPICS for template in TEMPLATES]
    return texts[:PROMPTS]


def our_config(model_dir: Path, algorithm: str, steps: int, skip_ref: bool = True, **llm):
    return validate_config(
        {
            "kind": "llm",
            "algorithm": algorithm,
            "beta0": BETA,
            "model": {"name_or_path": str(model_dir)},
            "rewards": [{"name": "bench_llm_step:length_reward"}],
            "prompts": {"texts": prompt_texts()},
            "steps": steps,
            "group_size": GROUP,
            "prompts_per_step": PROMPTS,
            "lr": LR,
            "seed": 0,
            "checkpoint_every": 10_000,
            "sample_every": 10_000,
            "lora": {"rank": 16, "alpha": 32, "target_modules": TARGETS},
            # with the skip, whole-batch KL only every 10k steps: the skip's speed, as measured before full_kl_every
            "llm": {
                "max_new_tokens": NEW_TOKENS,
                "temperature": 1.0,
                "skip_zero_beta_reference": skip_ref,
                "full_kl_every": 10_000 if skip_ref else 1,
                "eval_samples": 1,
                **llm,
            },
        }
    )


class OursRunner:
    """Our trainer set up once; ``step()`` runs one train_step (as the loop would, seeded per step)."""

    def __init__(self, cfg, run_dir: Path) -> None:
        from adrpo_engine.trainers.base import seed_everything, step_seed

        self.seed_everything, self.step_seed = seed_everything, step_seed
        self.trainer = LLMTrainer(cfg, run_dir, RecordingSink())
        self.seed_everything(0)
        self.trainer.setup()
        self.count = 0
        self.times: list[float] = []
        self.tokens: list[float] = []

    def step(self) -> None:
        self.count += 1
        self.seed_everything(self.step_seed(0, self.count))
        started = time.perf_counter()
        metrics = self.trainer.train_step(self.count)
        self.times.append(time.perf_counter() - started)
        self.tokens.append(metrics["completion/mean_tokens"])


class TrlRunner:
    """TRL's GRPOTrainer with the same model, prompts, LoRA and loss settings; step times from a callback."""

    def __init__(self, model_dir: Path, out: Path, steps: int) -> None:
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        times = self.times = []

        class StepTimer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                self.started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                times.append(time.perf_counter() - self.started)

        tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
        tokenizer.padding_side = "left"
        args = GRPOConfig(
            output_dir=str(out),
            use_cpu=True,
            max_steps=steps,
            per_device_train_batch_size=PROMPTS * GROUP,
            gradient_accumulation_steps=1,
            num_generations=GROUP,
            max_completion_length=NEW_TOKENS,
            temperature=1.0,
            top_p=1.0,
            beta=BETA,
            loss_type="grpo",
            scale_rewards="group",
            num_iterations=1,
            learning_rate=LR,
            lr_scheduler_type="constant",
            warmup_steps=0,
            max_grad_norm=1.0,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            seed=0,
            bf16=False,
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        data = Dataset.from_dict({"prompt": prompt_texts() * (steps + 2)})
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.trainer = GRPOTrainer(
            model=model,
            reward_funcs=trl_length_reward,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, task_type="CAUSAL_LM"),
            callbacks=[StepTimer()],
        )

    def step(self) -> None:
        """One TRL step: ``train()`` with one step (its set-up before the step is not timed), so TRL's steps
        interleave with ours and all see the same machine load."""
        self.trainer.args.max_steps = 1
        self.trainer.train()


def median_after_warmup(times: list[float]) -> float:
    return statistics.median(times[1:] if len(times) > 1 else times)


@torch.no_grad()
def breakdown(runner: OursRunner, repeats: int = 3) -> dict[str, float]:
    """Median seconds of each phase of our step on one batch."""
    trainer = runner.trainer
    policy = trainer.policy
    assert isinstance(policy, TextPolicy)  # tiny-lm: the text policy (its encode / sample / pad_id)
    prompts = prompt_texts()
    phases: dict[str, list[float]] = {}

    def timed(name, fn):
        started = time.perf_counter()
        out = fn()
        phases.setdefault(name, []).append(time.perf_counter() - started)
        return out

    for repeat in range(repeats):
        torch.manual_seed(repeat)
        rollouts = timed("sample: folded LoRA + KV loop", lambda: policy.sample(prompts, GROUP))
        ids, mask = policy.encode(prompts)

        def unfolded(decode: str) -> S.Rollouts:
            return S.sample_completions(
                policy.model,
                ids,
                mask,
                max_new_tokens=NEW_TOKENS,
                temperature=1.0,
                top_p=1.0,
                eos_ids=policy.eos_ids,
                pad_id=policy.pad_id,
                repeat=GROUP,
                fold_lora=False,
                decode=decode,
            )

        timed("sample: adapter active + KV loop", lambda: unfolded("loop"))
        timed("sample: adapter active + generate()", lambda: unfolded("generate"))
        timed("reference log-probs (all rows)", lambda: policy.logprobs(rollouts, adapter=False))
        with torch.enable_grad():
            policy.model.train()

            def forward_backward():
                logp, _ = policy.logprobs(rollouts, adapter=True, with_entropy=True)
                (logp * rollouts.completion_mask).sum().backward()
                trainer.optimizer.zero_grad(set_to_none=True)

            timed("policy forward + backward", forward_backward)
    return {name: statistics.median(values) for name, values in phases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per trainer (plus one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--skip-trl", action="store_true", help="only our trainer (ADRPO vs fixed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the reward 'bench_llm_step:length_reward'
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    total = args.steps + 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_model(tmp / "model")
        print(
            f"model: Qwen2 4 layers, hidden 256, vocab {len(train_tokenizer(corpus_lines(50)))}+ (random), "
            f"{PROMPTS} prompts x G={GROUP} x {NEW_TOKENS} new tokens, LoRA r16 q/k/v/o, beta {BETA}, "
            f"{args.threads} thread(s), {args.steps} timed steps + 1 warm-up each"
        )
        ours = {
            "fixed": OursRunner(our_config(model_dir, "fixed", total), tmp / "fixed"),
            "adrpo": OursRunner(our_config(model_dir, "adrpo", total), tmp / "adrpo"),
            "adrpo-full-ref": OursRunner(our_config(model_dir, "adrpo", total, skip_ref=False), tmp / "adrpo-full"),
        }
        trl = None if args.skip_trl else TrlRunner(model_dir, tmp / "trl", total)
        # Round-robin, one step each per round, so all runners see the same (shared, drifting) machine load.
        for _ in range(total):
            for runner in ours.values():
                runner.step()
            if trl is not None:
                trl.step()
        medians = {name: median_after_warmup(r.times) for name, r in ours.items()}
        for name, runner in ours.items():
            print(
                f"ours {name:<15} median step {medians[name]:.3f} s  (mean completion "
                f"{statistics.mean(runner.tokens):.1f} tokens)  steps: {' '.join(f'{t:.2f}' for t in runner.times)}"
            )
        if trl is not None:
            trl_median = median_after_warmup(trl.times)
            print(
                f"TRL GRPOTrainer     median step {trl_median:.3f} s  steps: {' '.join(f'{t:.2f}' for t in trl.times)}"
            )
            print(f"RATIO ours(fixed) / TRL = {medians['fixed'] / trl_median:.3f}   (target <= 0.67; ratio of medians)")
            print(f"RATIO ours(adrpo) / TRL = {medians['adrpo'] / trl_median:.3f}")
            paired = [a / b for a, b in zip(ours["fixed"].times[1:], trl.times[1:])]
            print(f"RATIO ours(fixed) / TRL, median of same-round ratios = {statistics.median(paired):.3f}")
        print(
            f"RATIO adrpo / fixed = {medians['adrpo'] / medians['fixed']:.3f}   "
            f"(overhead target <= 1.01; ADRPO skips the reference for beta_i = 0 rows)"
        )
        print(
            f"RATIO adrpo-full-ref / fixed = {medians['adrpo-full-ref'] / medians['fixed']:.3f}   "
            "(the adaptive coefficient alone)"
        )
        print("where our step's time goes (median s, one batch):")
        for name, seconds in breakdown(ours["fixed"]).items():
            print(f"  {name:<38} {seconds:.3f}")


if __name__ == "__main__":
    main()
