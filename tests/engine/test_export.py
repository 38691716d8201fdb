"""`adrpo export RUN --merged OUT`: the LoRA adapter merged into tiny-lm's weights is a plain transformers
folder whose outputs equal the adapter-on model's."""

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from adrpo_engine.cli import app
from adrpo_engine.config import ModelConfig
from adrpo_engine.models.causal_lm import load_causal_lm


def test_the_merged_export_loads_without_peft_and_matches_the_adapter(tmp_path):
    run, out = tmp_path / "run", tmp_path / "merged"
    trained = CliRunner().invoke(
        app,
        ["train", "--preset", "tiny-lm", "--set", "steps=2", "--set", "prompts_per_step=2", "--set", "lr=0.01"]
        + ["--out", str(run)],
    )
    assert trained.exit_code == 0, trained.output
    exported = CliRunner().invoke(app, ["export", str(run), "--merged", str(out)])
    assert exported.exit_code == 0, exported.output
    names = {path.name for path in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert "adapter_config.json" not in names  # a plain model folder

    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    base, _ = load_causal_lm(ModelConfig(name_or_path="builtin:tiny-lm"), torch.device("cpu"), torch.float32)
    adapted = PeftModel.from_pretrained(base, str(run / "checkpoints" / "step-000002")).eval()
    ids = tokenizer(["list five fruits:", "name colours:"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = adapted(**ids).logits
        got = merged(**ids).logits
        with adapted.disable_adapter():
            reference = adapted(**ids).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, reference, atol=1e-4)  # the adapter did change the model

    again = CliRunner().invoke(app, ["export", str(run), "--merged", str(out)])
    assert again.exit_code == 2 and "is not empty" in " ".join(again.output.split())
    missing = CliRunner().invoke(app, ["export", str(run), "--merged", str(tmp_path / "m2"), "--checkpoint", "7"])
    assert missing.exit_code == 2 and "no checkpoint at step 7" in " ".join(missing.output.split())
