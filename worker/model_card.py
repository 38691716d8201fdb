"""The README.md (model card) and metadata that go into a job's adapter zip: what was trained, how,
how well, and how to load it in three lines."""

from __future__ import annotations

import json
import re
from typing import Any

from adrpo_engine import metrics as M
from adrpo_engine.progress import TEXT_SAMPLE

# How to load the unpacked zip folder ("adapter/") on top of its base model, by base model (built-in
# models are made by this project) or by kind (hub models). Three lines each; the test runs them.
LOAD_SNIPPETS = {
    "builtin:digits-flow": (
        "from peft import PeftModel\n"
        "from adrpo_engine.models.digits import fresh_flow_net  # the built-in base network\n"
        'model = PeftModel.from_pretrained(fresh_flow_net(), "adapter")'
    ),
    "builtin:tiny-lm": (
        "from peft import AutoPeftModelForCausalLM  # the built-in base lives in ADRPO's data directory\n"
        "from adrpo_engine.models.tiny_lm import tiny_lm_path\n"
        'model = AutoPeftModelForCausalLM.from_pretrained("adapter", base_model_name_or_path=str(tiny_lm_path()))'
    ),
    "builtin:tiny-audio-lm": (
        "from peft import PeftModel\n"
        "from adrpo_engine.models.audio_lm import base_audio_lm  # the built-in base lives in ADRPO's data directory\n"
        'model = PeftModel.from_pretrained(base_audio_lm("builtin:tiny-audio-lm"), "adapter")'
    ),
    "llm": (
        "from peft import AutoPeftModelForCausalLM\n"
        'model = AutoPeftModelForCausalLM.from_pretrained("adapter")  # base: {base}\n'
        "model = model.merge_and_unload()  # optional: a plain transformers model"
    ),
    "audio": (
        "from peft import PeftModel\n"
        "from transformers import Qwen2AudioForConditionalGeneration  # base: {base}\n"
        'model = PeftModel.from_pretrained(Qwen2AudioForConditionalGeneration.from_pretrained("{base}"), "adapter")'
    ),
    "flow": (
        "from diffusers import StableDiffusion3Pipeline\n"
        'pipe = StableDiffusion3Pipeline.from_pretrained("{base}")\n'
        'pipe.load_lora_weights("adapter")'
    ),
}
CARD_METRICS = (M.REWARD_MEAN, M.KL, M.W2, M.DIVERSITY, M.ENTROPY, M.BETA_MEAN)


def load_snippet(config: dict[str, Any]) -> str:
    base = config["model"]["name_or_path"]
    template = LOAD_SNIPPETS.get(base) or LOAD_SNIPPETS[config["kind"]]
    return template.replace("{base}", base)


def zip_name(job_name: str, job_id: str, step: int) -> str:
    """``digits-even-1a2b3c4d-step-000120.zip``: the job's name, its id's first 8 characters, the step."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", job_name).strip("-") or "adapter"
    return f"{safe}-{job_id[:8]}-step-{step:06d}.zip"


def export_stem(job_name: str, job_id: str, step: int) -> str:
    """The zip's name without ``.zip``: the other exports of that checkpoint are named after it."""
    return zip_name(job_name, job_id, step).removesuffix(".zip")


def with_base_model(adapter_config: bytes, base: str) -> bytes:
    """adapter_config.json with ``base_model_name_or_path`` set (PEFT leaves it null for a bare module)."""
    data = json.loads(adapter_config)
    data["base_model_name_or_path"] = base
    return json.dumps(data, indent=2).encode()


def model_card(job: Any, step: int, metrics: dict[str, float], samples: list[Any], has_grid: bool) -> str:
    """The card's Markdown. ``metrics``: the values logged at the checkpoint's step; ``samples``: the
    samples logged at (or before) that step, shown as a table for text jobs."""
    config = job.config
    base = config["model"]["name_or_path"]
    a_min = config.get("a_min")
    a_max = config.get("a_max")
    beta0 = config.get("beta0")
    clip = (
        f"[{'-β₀' if a_min is None else a_min}, {'+β₀' if a_max is None else a_max}]"
        if job.algorithm == "adrpo"
        else "n/a (fixed β)"
    )
    rewards = ", ".join(
        f"`{r['name']}`" + (f" × {r['weight']:g}" if r.get("weight", 1) != 1 else "") for r in config.get("rewards", [])
    )
    rows = "\n".join(f"| {name} | {metrics[name]:.4g} |" for name in CARD_METRICS if name in metrics)
    lines = [
        f"# {job.name} (LoRA adapter, step {step})",
        "",
        f"Trained with ADRPO Studio (job `{job.id}`): {config['kind']} job, algorithm **{job.algorithm}**.",
        "",
        "| | |",
        "| --- | --- |",
        f"| base model | `{base}` |",
        f"| algorithm | {job.algorithm} |",
        f"| β₀ | {beta0} |",
        f"| advantage clip [A_min, A_max] | {clip} |",
        f"| rewards | {rewards} |",
        f"| steps | {step} of {config.get('steps')} |",
        f"| LoRA | rank {config.get('lora', {}).get('rank')} |",
        "",
        "## Metrics at this step",
        "",
        "| metric | value |",
        "| --- | --- |",
        rows or "| (none logged) | |",
        "",
    ]
    if has_grid:
        lines += [
            "## Samples",
            "",
            "Top row: the reference model (adapter off); bottom row: this adapter; same seeds.",
            "",
            "![samples](samples.png)",
            "",
        ]
    texts = [s for s in samples if getattr(s, "kind", None) == TEXT_SAMPLE][:8]
    if texts:
        lines += ["## Samples", "", "| role | prompt | completion | reward |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {s.role} | {_cell(s.prompt)} | {_cell(s.text or '')} | "
            f"{'—' if s.reward is None else f'{s.reward:.3f}'} |"
            for s in texts
        ]
        lines.append("")
    lines += [
        "## Load it",
        "",
        "Unpack the zip into a folder `adapter/`, then:",
        "",
        "```python",
        load_snippet(config),
        "```",
        "",
        "`config.yaml` in this zip is the job's exact config (`adrpo train --config config.yaml` trains it again).",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:120]
