"""GPU check: a few ADRPO-GRPO steps in bf16 on a ~0.5B Qwen2-architecture model built from config.

The model has Qwen2.5-0.5B's shape (24 layers, hidden 896, 14 heads / 2 KV heads, MLP 4864, vocab 151936,
tied embeddings; ~494M parameters, random weights, no download) and a byte-level BPE tokenizer trained
locally. Rewards: a length target in characters (random weights: only speed is measured, not quality).
Reports per-step time, completion tokens/s and peak GPU memory for P prompts x G completions x N tokens,
with LoRA r16 on q/k/v/o, ADRPO (reference skipped for beta_i = 0 rows) and fixed beta side by side.

    python bench/gpu_llm_check.py                      # CUDA, bf16: 8 prompts x 8 x 256 tokens, 4 steps each
    python bench/gpu_llm_check.py --tiny --steps 2     # CPU smoke test of the same script (tiny model)
    python bench/gpu_llm_check.py --processes 2 --fsdp # also adrpo on 2 GPUs, data parallel and FSDP2-sharded
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
from adrpo_engine.models.tiny_lm import corpus_lines, task_rows, train_tokenizer  # noqa: E402
from adrpo_engine.progress import RecordingSink  # noqa: E402
from adrpo_engine.runner import train  # noqa: E402
from bench.multi_process import compare_processes  # noqa: E402

QWEN_05B = dict(
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=4096,
)
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=1024,
    max_position_embeddings=512,
)  # > the tokenizer, as in the real shape


def build(folder: Path, shape: dict, dtype: torch.dtype) -> int:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tokenizer(corpus_lines(500))
    eos_id = tokenizer.eos_token_id  # the tokenizer's one special token, also its pad token
    if not isinstance(eos_id, int):
        raise RuntimeError("the trained tokenizer has no single end-of-text id")
    torch.manual_seed(0)
    config = Qwen2Config(
        **shape,
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        bos_token_id=eos_id,
    )
    model = Qwen2ForCausalLM(config).to(dtype)  # pyright: ignore[reportArgumentType] (transformers types .to's self oddly)
    # Random weights rarely emit EOS, so every completion runs to max_new_tokens (the worst case).
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (smoke test)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument(
        "--checkpointing",
        action="store_true",
        help="also run adrpo with model.gradient_checkpointing and report its peak memory and step time",
    )
    parser.add_argument("--processes", type=int, default=1, help="also run adrpo on this many processes (one GPU each)")
    parser.add_argument("--fsdp", action="store_true", help="with --processes: also with the frozen weights sharded")
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA device: running the CPU smoke test instead (--tiny)")
        args.tiny = True
    cuda = not args.tiny
    dtype = torch.bfloat16 if cuda else torch.float32
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        params = build(tmp / "model", TINY if args.tiny else QWEN_05B, dtype)
        device_name = torch.cuda.get_device_name() if cuda else "CPU"
        print(
            f"model: Qwen2 {params / 1e6:.1f}M parameters (built in {time.perf_counter() - started:.0f} s), "
            f"{device_name}, {str(dtype).removeprefix('torch.')}; {args.prompts} prompts x G={args.group} x "
            f"{args.new_tokens} new tokens, LoRA r16 q/k/v/o, grad_accum {args.grad_accum}"
        )
        prompts = [row["prompt"] for row in task_rows()]
        results = {}
        variants = [("adrpo", False), ("fixed", False)] + ([("adrpo", True)] if args.checkpointing else [])
        for algorithm, checkpointing in variants:
            label = algorithm + ("+gc" if checkpointing else "")
            data = {
                "kind": "llm",
                "algorithm": algorithm,
                "beta0": 0.04,
                "model": {
                    "name_or_path": str(tmp / "model"),
                    "device": "cuda" if cuda else "cpu",
                    "dtype": "bfloat16" if cuda else "float32",
                    "gradient_checkpointing": checkpointing,
                },
                "rewards": [{"name": "length", "options": {"target": 400, "unit": "chars"}}],
                "prompts": {"texts": prompts},
                "steps": args.steps + 1,
                "group_size": args.group,
                "prompts_per_step": args.prompts,
                "lr": 1e-5,
                "grad_accum": args.grad_accum,
                "checkpoint_every": 10_000,
                "sample_every": 10_000,
                "lora": {"rank": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
                "llm": {"max_new_tokens": args.new_tokens, "eval_samples": 1},
            }
            cfg = validate_config(data)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            sink = RecordingSink()
            train(cfg, tmp / label, sink, resume=False)
            steps = [sink.steps[s] for s in sorted(sink.steps)][1:]  # the first step warms up kernels
            results[label] = steps
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
            print(
                f"{label:<9} step time median {statistics.median(s['step_time'] for s in steps):.2f} s, "
                f"completion tokens/s {statistics.median(s['tokens_per_s'] for s in steps):.0f}, "
                f"samples/s {statistics.median(s['samples_per_s'] for s in steps):.1f}, "
                f"mean completion {statistics.mean(s['completion/mean_tokens'] for s in steps):.0f} tokens, "
                f"reference rows {statistics.mean(s['kl/ref_frac'] for s in steps):.2f}, "
                f"loss finite {all(torch.isfinite(torch.tensor(s['loss'])) for s in steps)}, peak memory {peak:.1f} GiB"
            )
        ratio = statistics.median(s["step_time"] for s in results["adrpo"]) / statistics.median(
            s["step_time"] for s in results["fixed"]
        )
        print(f"RATIO adrpo / fixed step time = {ratio:.3f}")
        if args.checkpointing:
            ratio = statistics.median(s["step_time"] for s in results["adrpo+gc"]) / statistics.median(
                s["step_time"] for s in results["adrpo"]
            )
            print(f"RATIO adrpo with / without gradient checkpointing step time = {ratio:.3f}")
        if args.processes > 1:
            plain = {**data, "algorithm": "adrpo", "model": {**data["model"], "gradient_checkpointing": False}}
            compare_processes(plain, tmp, args.processes, args.fsdp, args.prompts * args.group, "completions")


if __name__ == "__main__":
    main()
