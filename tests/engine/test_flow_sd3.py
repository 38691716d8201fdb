"""The flow trainer on the tiny SD3 pipeline: training step, adapter formats, sampler vs the pipeline."""

from __future__ import annotations

import math

import pytest
import torch

from adrpo_engine import metrics as M
from adrpo_engine.config import validate_config
from adrpo_engine.models.sd3 import SD3Policy, load_pipeline
from adrpo_engine.models.tiny_sd3 import tiny_sd3_path
from adrpo_engine.progress import RecordingSink
from adrpo_engine.rewards.image import clip_embedder, clip_score
from adrpo_engine.runner import compare, train
from tests.comfyui_patch import apply_comfyui_lora, velocity

PROMPTS = ["a red cat", "a blue dog"]


def tiny_config(**overrides):
    data = {
        "kind": "flow",
        "model": {"name_or_path": "builtin:tiny-sd3"},
        "rewards": [{"name": "clip_score", "options": {"model": "builtin:tiny-clip"}}],
        "prompts": {"texts": PROMPTS},
        "steps": 1,
        "group_size": 2,
        "prompts_per_step": 2,
        "lr": 1e-2,
        "sample_every": 100,
        "checkpoint_every": 100,
        "lora": {"rank": 4, "alpha": 8},
        "flow": {"sample_steps": 3, "guidance_scale": 2.0},
    }
    data.update(overrides)
    return validate_config(data)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sd3run")
    sink = RecordingSink()
    result = train(tiny_config(steps=2), run_dir, sink)
    return run_dir, sink, result


def test_adrpo_step_is_finite_and_logs_flow_metrics(trained_run):
    _, sink, result = trained_run
    metrics = sink.steps[2]
    assert set(M.FLOW) <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics[M.W2] > 0  # after one update the adapter moved the velocity away from the reference
    files = {path.name for path in result.checkpoint.iterdir()}
    assert {"pytorch_lora_weights.safetensors", "adapter_model.safetensors", "adapter_config.json"} <= files


def test_sampler_matches_the_diffusers_pipeline():
    pipeline = load_pipeline("builtin:tiny-sd3")
    policy = SD3Policy(pipeline, torch.device("cpu"), torch.float32)
    ours = policy.sample(policy.encode_prompts(PROMPTS), torch.Generator().manual_seed(3), steps=4, guidance=2.5)
    theirs = pipeline(
        PROMPTS,
        num_inference_steps=4,
        guidance_scale=2.5,
        generator=torch.Generator().manual_seed(3),
        output_type="latent",
    ).images
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_saved_adapter_loads_into_a_fresh_pipeline(trained_run):
    from peft import PeftModel

    _, _, result = trained_run

    def latents(pipe):
        return pipe(
            PROMPTS,
            num_inference_steps=3,
            guidance_scale=2.0,
            generator=torch.Generator().manual_seed(0),
            output_type="latent",
        ).images

    fresh = load_pipeline(str(tiny_sd3_path()))
    before = latents(fresh)
    fresh.load_lora_weights(str(result.checkpoint))
    after = latents(fresh)
    assert not torch.allclose(before, after, atol=1e-4)

    # the trained policy draws exactly what the pipeline with the loaded adapter draws
    policy = SD3Policy(load_pipeline("builtin:tiny-sd3"), torch.device("cpu"), torch.float32)
    policy.add_lora(tiny_config().lora)
    policy.load_adapter(result.checkpoint)
    ours = policy.sample(policy.encode_prompts(PROMPTS), torch.Generator().manual_seed(0), steps=3, guidance=2.0)
    assert torch.allclose(ours, after, atol=1e-5)

    # PEFT format: the same weights through PeftModel.from_pretrained
    transformer = load_pipeline(str(tiny_sd3_path())).transformer
    peft_model = PeftModel.from_pretrained(transformer, str(result.checkpoint))
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    cond = policy.encode_prompts(PROMPTS[:1])
    t = torch.tensor([0.5])
    assert torch.allclose(policy.velocity(x, t, cond), velocity(peft_model, x, t, cond), atol=1e-5)


def test_same_seed_same_images(trained_run, tmp_path):
    run_dir, _, result = trained_run
    first = compare(tiny_config(), result.checkpoint, "a red cat", 11, 2, tmp_path / "a")
    second = compare(tiny_config(), result.checkpoint, "a red cat", 11, 2, tmp_path / "b")
    for a, b in zip(first, second):
        assert open(a.image_path, "rb").read() == open(b.image_path, "rb").read()
    assert [s.role for s in first] == ["reference", "reference", "policy", "policy"]


def test_clip_score_by_hand():
    embedder = clip_embedder("builtin:tiny-clip")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    scores = clip_score(model="builtin:tiny-clip")(images, ["a cat", "a dog"])
    image_embeds = embedder.image_embeddings(images)
    text_embeds = embedder.text_embeddings(["a cat", "a dog"])
    cosine = torch.nn.functional.cosine_similarity(image_embeds, text_embeds)
    assert scores == pytest.approx((100 * cosine.clamp_min(0)).tolist(), abs=1e-4)
    assert torch.allclose(image_embeds.norm(dim=-1), torch.ones(2))


def test_sd3_preset_has_its_shipped_prompts():
    from adrpo_engine.data import load_prompts
    from adrpo_engine.presets import preset_config

    config = preset_config("sd3-medium-clip")
    prompts = load_prompts(config.prompts)
    assert len(prompts) >= 20 and all(row.prompt for row in prompts)
    assert config.rewards[0].name == "clip_score"


def test_t2i_diversity_is_clip_pairwise_distance():
    from adrpo_engine.config import RewardSpec
    from adrpo_engine.rewards.image import PIXEL_DIST, build_diversity

    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    same = images[:1].expand(4, -1, -1, -1)
    by_clip = build_diversity(
        "builtin:tiny-sd3", [RewardSpec(name="clip_score", options={"model": "builtin:tiny-clip"})]
    )
    assert by_clip(same, 4)["diversity"] == pytest.approx(0.0, abs=1e-5)
    embeds = clip_embedder("builtin:tiny-clip").image_embeddings(images[:2])
    assert by_clip(images[:2], 2)["diversity"] == pytest.approx((embeds[0] - embeds[1]).norm().item(), abs=1e-5)
    # groups are measured separately: two groups of identical images have no diversity
    assert by_clip(torch.cat([same[:2], images[1:2].expand(2, -1, -1, -1)]), 2)["diversity"] == pytest.approx(
        0.0, abs=1e-5
    )
    by_pixels = build_diversity("some/sd3", [RewardSpec(name="mymodule:reward")])(images, 4)
    assert by_pixels["diversity"] == by_pixels[PIXEL_DIST] > 0


def test_the_comfyui_export_applies_as_comfyui_applies_a_lora(trained_run, tmp_path):
    """Patched as ComfyUI patches a LoRA (tests/comfyui_patch.py), the transformer gives the fine-tuned velocity."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from adrpo_engine.cli import app

    run_dir, _, _ = trained_run
    out = tmp_path / "loras" / "adrpo_tiny.safetensors"
    result = CliRunner().invoke(app, ["export", str(run_dir), "--comfyui", str(out)])
    assert result.exit_code == 0, result.output
    state = load_file(str(out))
    assert state and all(key.startswith("lora_transformer_") for key in state)

    transformer = load_pipeline(str(tiny_sd3_path())).transformer
    assert len(apply_comfyui_lora(transformer, state)) == len(state) // 3

    policy = SD3Policy(load_pipeline("builtin:tiny-sd3"), torch.device("cpu"), torch.float32)
    policy.add_lora(tiny_config().lora)
    policy.load_adapter(run_dir / "checkpoints" / "step-000002")
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    cond = policy.encode_prompts(PROMPTS[:1])
    t = torch.tensor([0.5])
    assert torch.allclose(policy.velocity(x, t, cond), velocity(transformer, x, t, cond), atol=1e-5)

    refused = CliRunner().invoke(app, ["export", str(run_dir), "--comfyui", str(out)])
    assert refused.exit_code == 2 and "exists" in refused.output
