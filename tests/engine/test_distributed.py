"""Data parallel on 2 CPU processes (gloo, `accelerate launch` through `adrpo train`) against one process on the
same global batch: the same adapter, the same metrics, rank 0 alone writing; config checks; gradient checkpointing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from adrpo_engine.config import ConfigError, validate_config
from adrpo_engine.config_io import apply_overrides
from adrpo_engine.presets import preset_config
from adrpo_engine.runner import train
from adrpo_engine.trainers.base import seed_everything
from adrpo_engine.trainers.llm import LLMTrainer
from tests.engine.test_flow_sd3 import tiny_config

REPO = Path(__file__).resolve().parents[2]
ADAPTER = "adapter_model.safetensors"

LLM_JOB = {
    "kind": "llm",
    "model": {"name_or_path": "builtin:tiny-lm"},
    "rewards": [{"name": "length", "options": {"target": 12, "unit": "chars"}}],
    "prompts": {"dataset": "builtin:tiny-lm-task"},
    "steps": 3,
    "group_size": 4,
    "prompts_per_step": 4,
    "lr": 1e-2,
    "checkpoint_every": 100,
    "sample_every": 100,
    "lora": {"rank": 4, "alpha": 8},
    "llm": {"max_new_tokens": 8, "eval_samples": 1},
}
AUDIO_JOB = {
    **LLM_JOB,
    "kind": "audio",
    "model": {"name_or_path": "builtin:tiny-audio-lm"},
    "rewards": [{"name": "mc_answer"}, {"name": "mc_format", "weight": 0.5}],
    "prompts": {"dataset": "builtin:audio-tones", "limit": 16},
}
FLOW = {"steps": 3, "group_size": 4, "prompts_per_step": 4, "sample_every": 100, "checkpoint_every": 100}


def train_on_two_processes(config_data: dict, run_dir: Path, accelerate: dict | None = None) -> str:
    """`adrpo train` of the config with resources.processes = 2 (the CLI starts `accelerate launch`, with the
    ``accelerate`` config if given); returns what it printed."""
    path = run_dir.parent / f"{run_dir.name}.yaml"
    resources: dict = {"processes": 2}
    if accelerate is not None:
        resources["accelerate_config"] = str(run_dir.parent / f"{run_dir.name}-accelerate.yaml")
        Path(resources["accelerate_config"]).write_text(yaml.safe_dump(accelerate))
    path.write_text(yaml.safe_dump({**config_data, "resources": resources}))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "400",  # one log line per line
    }
    done = subprocess.run(
        [sys.executable, "-m", "adrpo_engine.cli", "train", "-c", str(path), "-o", str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def adapter(run_dir: Path, step: int = 3) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / f"step-{step:06d}" / ADAPTER))


def assert_same_adapter(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], lr: float) -> None:
    """Equal up to the order of float sums. Ranks all-reduce their gradients where one process accumulates
    micro-batches: the sums differ in the last bits, and AdamW's first steps (update ~ lr * g / |g|) magnify
    that on entries whose gradient is near zero, measured up to 6e-5 on a few entries at lr 1e-2 (mean 1e-7).
    Training on other rows, or averaging wrongly, moves nearly every entry by a good fraction of lr."""
    assert a.keys() == b.keys()
    differences = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert float(differences.max()) <= lr / 10
    assert float(differences.mean()) <= lr / 1e4


def metric_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_metrics(two: list[dict], one: list[dict], names: list[str], tolerance: float) -> None:
    assert [row["step"] for row in two] == [row["step"] for row in one] == [1, 2, 3]  # once each: rank 0 alone
    for a, b in zip(two, one):
        for name in names:
            assert a[name] == pytest.approx(b[name], abs=tolerance), (a["step"], name)


def test_llm_two_processes_train_the_adapter_of_one_process(tmp_path):
    train_on_two_processes(LLM_JOB, tmp_path / "two")
    one_split = validate_config(apply_overrides(LLM_JOB, {"grad_accum": 2}))
    train(one_split, tmp_path / "one-split", resume=False)
    train(validate_config(LLM_JOB), tmp_path / "one", resume=False)
    two, split, one = adapter(tmp_path / "two"), adapter(tmp_path / "one-split"), adapter(tmp_path / "one")
    # 2 ranks x 1 micro-batch add the same terms as 1 process x 2 micro-batches, and as one micro-batch of 16.
    assert_same_adapter(two, split, LLM_JOB["lr"])
    assert_same_adapter(two, one, LLM_JOB["lr"])
    names = ["reward/mean", "reward/std", "loss", "grad_norm", "entropy", "kl", "diversity", "beta_eff/mean"]
    assert_same_metrics(metric_rows(tmp_path / "two"), metric_rows(tmp_path / "one-split"), names, 1e-5)
    assert not list((tmp_path / "two").glob("checkpoints/.*"))  # no staging folder left by a second writer


def test_audio_two_processes_train_the_adapter_of_one_process(tmp_path):
    # Audio rows get the same per-group draws as text: each rank's (clip, question) groups sample the
    # completions they would in one process, so the adapters and metrics agree as for text.
    train_on_two_processes(AUDIO_JOB, tmp_path / "two")
    train(validate_config(apply_overrides(AUDIO_JOB, {"grad_accum": 2})), tmp_path / "one-split", resume=False)
    assert_same_adapter(adapter(tmp_path / "two"), adapter(tmp_path / "one-split"), AUDIO_JOB["lr"])
    names = ["reward/mean", "reward/mc_answer", "loss", "grad_norm", "entropy", "kl", "diversity", "beta_eff/mean"]
    assert_same_metrics(metric_rows(tmp_path / "two"), metric_rows(tmp_path / "one-split"), names, 1e-5)


def test_flow_two_processes_train_the_adapter_of_one_process(tmp_path):
    config = preset_config("digits-even", {**FLOW, "flow.sample_steps": 4})
    data = config.model_dump(mode="json")
    train_on_two_processes(data, tmp_path / "two")
    train(config, tmp_path / "one", resume=False)
    assert_same_adapter(adapter(tmp_path / "two"), adapter(tmp_path / "one"), config.lr)
    names = ["reward/mean", "loss", "fm_loss", "w2", "grad_norm", "diversity", "beta_eff/mean"]
    assert_same_metrics(metric_rows(tmp_path / "two"), metric_rows(tmp_path / "one"), names, 1e-5)


FSDP = {
    "distributed_type": "FSDP",
    "num_processes": 2,
    "fsdp_config": {
        "fsdp_version": 2,
        "fsdp_reshard_after_forward": True,
        "fsdp_state_dict_type": "SHARDED_STATE_DICT",
    },
}


def held_share(printed: str) -> float:
    """The share of the frozen weights rank 0 said it holds after sharding."""
    found = re.search(r"FSDP2: .* over 2 processes in (\d+) units; this rank holds ([\d,]+) of ([\d,]+)", printed)
    assert found, printed[-3000:]
    held, total = (int(found.group(i).replace(",", "")) for i in (2, 3))
    return held / total


def test_llm_with_sharded_weights_trains_and_resumes_to_the_adapter_of_one_process(tmp_path):
    # FSDP2 shards the frozen weights (each rank keeps half of every decoder layer's and the root's) and
    # all-gathers them per unit; rollouts decode in lockstep. Two steps, then a resumed third (the sharded
    # model loads the checkpoint's adapter and every rank's RNG state): the adapter of one process.
    scratch = set(Path(tempfile.gettempdir()).glob("adrpo-rank1-*"))
    printed = train_on_two_processes({**LLM_JOB, "steps": 2}, tmp_path / "two", FSDP)
    assert 0.45 < held_share(printed) < 0.55
    assert "resumed from" in train_on_two_processes(LLM_JOB, tmp_path / "two", FSDP)
    train(validate_config(apply_overrides(LLM_JOB, {"grad_accum": 2})), tmp_path / "one-split", resume=False)
    assert_same_adapter(adapter(tmp_path / "two"), adapter(tmp_path / "one-split"), LLM_JOB["lr"])
    names = ["reward/mean", "loss", "grad_norm", "kl", "beta_eff/mean"]
    assert_same_metrics(metric_rows(tmp_path / "two"), metric_rows(tmp_path / "one-split"), names, 1e-5)
    assert set(Path(tempfile.gettempdir()).glob("adrpo-rank1-*")) == scratch  # rank 1's sample folder is gone


def test_sd3_with_sharded_transformer_trains_the_adapter_of_one_process(tmp_path):
    # The transformer's joint blocks are the FSDP units (the model's _no_split_modules); text encoders and
    # VAE stay whole. Samples for the studio are drawn on both ranks (each forward all-gathers).
    config = tiny_config(steps=3)
    printed = train_on_two_processes(config.model_dump(mode="json"), tmp_path / "two", FSDP)
    assert 0.45 < held_share(printed) < 0.55
    assert re.search(r"in (\d+) units", printed).group(1) == "2"  # its JointTransformerBlock and the root
    train(config, tmp_path / "one", resume=False)
    assert_same_adapter(adapter(tmp_path / "two"), adapter(tmp_path / "one"), config.lr)
    names = ["reward/mean", "loss", "fm_loss", "w2", "grad_norm", "beta_eff/mean"]
    assert_same_metrics(metric_rows(tmp_path / "two"), metric_rows(tmp_path / "one"), names, 1e-5)
    samples = sorted(p.name for p in (tmp_path / "two" / "samples").iterdir())
    assert samples == sorted(p.name for p in (tmp_path / "one" / "samples").iterdir())
    assert {"step-000000", "step-000003"} <= set(samples)


@pytest.mark.parametrize(
    ("fsdp_config", "overrides", "message"),
    [
        ({"fsdp_version": 1}, {}, "fsdp_config.fsdp_version must be 2 (got 1)"),
        ({}, {}, "fsdp_config.fsdp_version must be 2 (got 1)"),
        ({"fsdp_version": 2, "fsdp_offload_params": True}, {}, "fsdp_config.fsdp_offload_params must be false"),
        ({"fsdp_version": 2, "fsdp_activation_checkpointing": True}, {}, "use model.gradient_checkpointing"),
        ({"fsdp_version": 2, "fsdp_auto_wrap_policy": "SIZE_BASED_WRAP"}, {}, "fsdp_auto_wrap_policy must be one of"),
        ({"fsdp_version": 2, "fsdp_reshard_after_forward": "FULL_SHARD"}, {}, "must be true or false for FSDP2"),
        ({"fsdp_version": 2, "fsdp_bogus": 1}, {}, "fsdp_config.fsdp_bogus is not supported"),
        ({"fsdp_version": 2, "fsdp_transformer_layer_cls_to_wrap": "a.b"}, {}, "must name module classes"),
        ({"fsdp_version": 2}, {"resources.processes": 1}, "set resources.processes >= 2"),
    ],
)
def test_an_fsdp_config_is_checked_key_by_key(tmp_path, fsdp_config, overrides, message):
    path = tmp_path / "fsdp.yaml"
    path.write_text(yaml.safe_dump({"distributed_type": "FSDP", "fsdp_config": fsdp_config}))
    base = apply_overrides(LLM_JOB, {"resources.processes": 2, "resources.accelerate_config": str(path)})
    with pytest.raises(ConfigError, match="resources.accelerate_config: .*" + _escape(message)):
        validate_config(apply_overrides(base, overrides))


def test_fsdp_is_refused_for_audio_and_names_a_missing_wrap_class(tmp_path):
    path = tmp_path / "fsdp.yaml"
    path.write_text(yaml.safe_dump({"distributed_type": "FSDP", "fsdp_config": {"fsdp_version": 2}}))
    resources = {"resources.processes": 2, "resources.accelerate_config": str(path)}
    with pytest.raises(ConfigError, match="FSDP is supported for kinds llm, flow, not audio"):
        validate_config(apply_overrides(AUDIO_JOB, resources))
    validate_config(apply_overrides(LLM_JOB, resources))  # accepted for text

    from adrpo_engine.config import FsdpSettings
    from adrpo_engine.sharding import wrap_units

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert wrap_units(model, FsdpSettings(wrap_classes=("Linear",)))[0] is model[1][0]  # innermost first
    assert wrap_units(model, FsdpSettings(wrap_classes=())) == []
    with pytest.raises(ConfigError, match="names LlamaDecoderLayer, which is not a module class of this model"):
        wrap_units(model, FsdpSettings(wrap_classes=("LlamaDecoderLayer",)))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"resources.processes": 3}, "resources.processes (3) must divide prompts_per_step (4)"),
        ({"resources.processes": 0}, "resources.processes: Input should be greater than or equal to 1"),
        ({"resources.processes": 2, "algorithm": "dpo"}, "resources.processes must be 1 for algorithm dpo"),
        ({"optim": "adamw_8bit"}, "optim: Value error, adamw_8bit needs bitsandbytes"),
    ],
)
def test_resources_are_checked_with_the_field_named(overrides, message):
    if overrides.get("optim") == "adamw_8bit":
        pytest.importorskip("nonexistent_module_to_skip") if _has_bitsandbytes() else None
        message = "optim: adamw_8bit needs bitsandbytes"
    base = preset_config("digits-even", {}).model_dump(mode="json")
    with pytest.raises(ConfigError, match=_escape(message)):
        validate_config(apply_overrides(base, overrides))


def _has_bitsandbytes() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def _escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"distributed_type": "DEEPSPEED"}, "distributed_type DEEPSPEED is not supported"),
        ({"distributed_type": "MULTI_GPU", "num_processes": 4}, "its num_processes is 4 but resources.processes is 2"),
        ("- not a mapping", "not a mapping of accelerate keys"),
    ],
)
def test_an_accelerate_config_is_read_and_checked(tmp_path, content, message):
    path = tmp_path / "accelerate.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    base = preset_config("digits-even", {}).model_dump(mode="json")
    with pytest.raises(ConfigError, match="resources.accelerate_config: " + _escape(message)):
        validate_config(apply_overrides(base, {"resources.processes": 2, "resources.accelerate_config": str(path)}))
    with pytest.raises(ConfigError, match="resources.accelerate_config: not a file"):
        validate_config(apply_overrides(base, {"resources.accelerate_config": str(tmp_path / "missing.yaml")}))
    path.write_text(yaml.safe_dump({"distributed_type": "MULTI_GPU", "num_processes": 2}))
    validate_config(apply_overrides(base, {"resources.processes": 2, "resources.accelerate_config": str(path)}))


def test_gradient_checkpointing_keeps_fewer_activations_and_gives_the_same_gradients(tmp_path):
    gradients, saved_bytes = {}, {}
    for checkpointing in (False, True):
        config = validate_config(apply_overrides(LLM_JOB, {"model.gradient_checkpointing": checkpointing}))
        trainer = LLMTrainer(config, tmp_path / str(checkpointing))
        seed_everything(0)
        trainer.setup()
        saved = []

        def pack(tensor, saved=saved):
            saved.append(tensor.numel() * tensor.element_size())
            return tensor

        logprobs = trainer.policy.logprobs

        def counting(*args, logprobs=logprobs, **kwargs):
            # what autograd keeps for the backward of the update pass (a checkpointed layer keeps only its input)
            if not torch.is_grad_enabled():
                return logprobs(*args, **kwargs)
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                return logprobs(*args, **kwargs)

        trainer.policy.logprobs = counting
        original = trainer.optimizer_step

        def capture(original=original, checkpointing=checkpointing, trainer=trainer):
            gradients[checkpointing] = [p.grad.clone() for p in trainer.trainable]
            return original()

        trainer.optimizer_step = capture
        seed_everything(1)
        trainer.train_step(1)
        saved_bytes[checkpointing] = sum(saved)
    assert 0 < saved_bytes[True] < saved_bytes[False]
    for plain, recomputed in zip(gradients[False], gradients[True]):
        torch.testing.assert_close(plain, recomputed, atol=1e-6, rtol=1e-5)


def test_sd3_gradient_checkpointing_keeps_fewer_activations_and_gives_the_same_gradients(tmp_path):
    from adrpo_engine.trainers.flow import FlowTrainer

    data = {
        "kind": "flow",
        "model": {"name_or_path": "builtin:tiny-sd3"},
        "rewards": [{"name": "clip_score", "options": {"model": "builtin:tiny-clip"}}],
        "prompts": {"texts": ["a red circle", "a blue square"]},
        "steps": 1,
        "group_size": 2,
        "prompts_per_step": 2,
        "lr": 1e-2,
        "lora": {"rank": 4, "alpha": 8},
        "flow": {"sample_steps": 2},
    }
    gradients, saved_bytes = {}, {}
    for checkpointing in (False, True):
        config = validate_config(apply_overrides(data, {"model.gradient_checkpointing": checkpointing}))
        trainer = FlowTrainer(config, tmp_path / str(checkpointing))
        seed_everything(0)
        trainer.setup()
        assert trainer.policy.transformer.gradient_checkpointing is checkpointing
        saved = []
        velocity = trainer.policy.velocity

        def counting(*args, velocity=velocity, saved=saved, **kwargs):
            if not torch.is_grad_enabled():
                return velocity(*args, **kwargs)
            pack = lambda tensor: saved.append(tensor.numel() * tensor.element_size()) or tensor  # noqa: E731
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                return velocity(*args, **kwargs)

        trainer.policy.velocity = counting
        original = trainer.optimizer_step

        def capture(original=original, checkpointing=checkpointing, trainer=trainer):
            gradients[checkpointing] = [p.grad.clone() for p in trainer.trainable]
            return original()

        trainer.optimizer_step = capture
        trainer.train_step(1)
        saved_bytes[checkpointing] = sum(saved)
    assert 0 < saved_bytes[True] < saved_bytes[False]
    for plain, recomputed in zip(gradients[False], gradients[True]):
        torch.testing.assert_close(plain, recomputed, atol=1e-6, rtol=1e-5)


def test_a_flow_model_without_checkpointing_support_refuses_it(tmp_path):
    config = preset_config("digits-even", {**FLOW, "model.gradient_checkpointing": True})
    with pytest.raises(ConfigError, match="model.gradient_checkpointing: not supported by"):
        train(config, tmp_path / "run", resume=False)
