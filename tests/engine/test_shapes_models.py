"""builtin:shapes-clip and builtin:shapes-sd3 (reduced build recipe): hub-style loading, the pipeline's own
call, the preset end to end for a few steps, its adapter in a fresh pipeline and as a ComfyUI LoRA."""

from __future__ import annotations

import math
import zipfile

import pytest
import torch

from adrpo_engine import metrics as M
from adrpo_engine.config import RewardSpec
from adrpo_engine.models.sd3 import SD3Policy, load_pipeline
from adrpo_engine.presets import preset_config
from adrpo_engine.progress import RecordingSink
from adrpo_engine.rewards import build_reward
from adrpo_engine.rewards.image import build_diversity, clip_embedder
from adrpo_engine.runner import train
from adrpo_engine.worlds.shapes.builtins import shapes_clip_path, shapes_sd3_path
from adrpo_engine.worlds.shapes.clip import WORDS
from adrpo_engine.worlds.shapes.recipe import REDUCED, active_recipe
from tests.comfyui_patch import apply_comfyui_lora, velocity

PROMPTS = ["a red circle to the left of a blue square", "two green triangles"]


def test_tests_use_the_reduced_recipe():
    assert active_recipe() == REDUCED


def test_dit_initialisation_starts_every_block_as_the_identity_and_predicts_zero():
    from adrpo_engine.worlds.shapes import sd3

    transformer = sd3.new_transformer(text_hidden=64, projection=64, layers=2)
    sd3.initialise_like_dit(transformer)
    for block in transformer.transformer_blocks:
        assert not block.norm1.linear.weight.any() and not block.norm1.linear.bias.any()
    latents = torch.randn(2, sd3.LATENT_CHANNELS, 16, 16)
    out = transformer(
        hidden_states=latents,
        timestep=torch.tensor([100.0, 900.0]),
        encoder_hidden_states=torch.randn(2, 5, 128),
        pooled_projections=torch.randn(2, 128),
        return_dict=False,
    )[0]
    assert out.shape == latents.shape and not out.any()
    # not a dead start: the zero output layer still gets a gradient
    (out - latents).pow(2).mean().backward()
    assert transformer.proj_out.weight.grad is not None and transformer.proj_out.weight.grad.abs().sum() > 0


def test_shapes_clip_loads_like_a_hub_clip_and_scores():
    from transformers import AutoTokenizer, CLIPModel

    folder = shapes_clip_path()
    model = CLIPModel.from_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert model.config.vision_config.image_size == 32
    for word in WORDS:  # every word of the grammar is one token between start and end
        assert len(tokenizer(word).input_ids) == 3, word
    reward = build_reward(RewardSpec(name="clip_score", options={"model": "builtin:shapes-clip"}), "image")
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    values = reward(images, PROMPTS * 2)
    assert len(values) == 4 and all(0.0 <= v <= 100.0 for v in values)
    assert clip_embedder("builtin:shapes-clip").image_embeddings(images).shape == (4, 64)


def test_shapes_sd3_is_a_t5_free_pipeline_the_pipeline_itself_can_run():
    pipeline = load_pipeline("builtin:shapes-sd3")
    assert pipeline.text_encoder_3 is None and pipeline.tokenizer_3 is None
    assert pipeline.adrpo_t5_tokens == 0
    images = pipeline(
        PROMPTS,
        num_inference_steps=2,
        guidance_scale=2.0,
        max_sequence_length=0,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    assert images.shape == (2, 3, 32, 32)
    # the text encoders are the CLIP's text tower
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(str(shapes_clip_path()))
    for encoder in (pipeline.text_encoder, pipeline.text_encoder_2):
        assert torch.equal(encoder.text_projection.weight, clip.text_projection.weight)


def test_policy_sampler_matches_the_pipeline_with_an_empty_t5_slot():
    pipeline = load_pipeline("builtin:shapes-sd3")
    policy = SD3Policy(pipeline, torch.device("cpu"), torch.float32)
    # the two CLIPs side by side along features (2 x 64), 16 tokens, no T5 tokens
    assert policy.encode_prompts(PROMPTS)["embeds"].shape == (2, 16, 128)
    ours = policy.sample(policy.encode_prompts(PROMPTS), torch.Generator().manual_seed(3), steps=3, guidance=2.0)
    theirs = pipeline(
        PROMPTS,
        num_inference_steps=3,
        guidance_scale=2.0,
        max_sequence_length=0,
        generator=torch.Generator().manual_seed(3),
        output_type="latent",
    ).images
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_diversity_of_a_shapes_job_is_clip_diversity():
    measure = build_diversity("builtin:shapes-sd3", [RewardSpec(name="shapes:geneval")])
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    values = measure(images, 4)
    assert set(values) == {"diversity"} and values["diversity"] > 0


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    """The real shapes-compose preset, a few steps (smaller groups so it stays quick)."""
    run_dir = tmp_path_factory.mktemp("shapes-compose")
    config = preset_config(
        "shapes-compose",
        {
            "steps": 2,
            "group_size": 2,
            "prompts_per_step": 2,
            "checkpoint_every": 2,
            "sample_every": 2,
            "flow.sample_steps": 2,
        },
    )
    sink = RecordingSink()
    return config, run_dir, sink, train(config, run_dir, sink)


def test_preset_runs_end_to_end_and_logs_the_breakdown(preset_run):
    config, run_dir, sink, _ = preset_run
    assert config.model.name_or_path == "builtin:shapes-sd3"
    metrics = sink.steps[2]
    assert set(M.FLOW) <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert {"reward/geneval/object", "reward/geneval/binding", "reward/geneval/strict"} <= set(metrics)
    assert 0.0 <= metrics[M.REWARD_MEAN] <= 1.0
    assert metrics[M.DIVERSITY] > 0
    roles = {sample.role for sample in sink.samples}
    assert roles == {"reference", "policy"} and (run_dir / "samples" / "before_after.png").is_file()


def test_adapter_zip_loads_into_a_fresh_pipeline(preset_run, tmp_path):
    from worker.artifacts import build_adapter_zip

    _, run_dir, _, result = preset_run
    # the studio's / API's download
    archive = build_adapter_zip(run_dir, str(result.checkpoint.relative_to(run_dir)), 2)
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(archive).extractall(unpacked)

    from diffusers import StableDiffusion3Pipeline

    def latents(pipe):
        return pipe(
            PROMPTS,
            num_inference_steps=3,
            guidance_scale=1.0,
            max_sequence_length=0,
            generator=torch.Generator().manual_seed(0),
            output_type="latent",
        ).images

    fresh = StableDiffusion3Pipeline.from_pretrained(str(shapes_sd3_path()), text_encoder_3=None, tokenizer_3=None)
    before = latents(fresh)
    fresh.load_lora_weights(str(unpacked))
    after = latents(fresh)
    assert not torch.allclose(before, after, atol=1e-6)

    policy = SD3Policy(load_pipeline("builtin:shapes-sd3"), torch.device("cpu"), torch.float32)
    policy.add_lora(preset_config("shapes-compose").lora)
    policy.load_adapter(result.checkpoint)
    ours = policy.sample(policy.encode_prompts(PROMPTS), torch.Generator().manual_seed(0), steps=3, guidance=1.0)
    assert torch.allclose(ours, after, atol=1e-5)


def test_the_comfyui_export_of_a_shapes_checkpoint_patches_the_shapes_transformer(preset_run, tmp_path):
    from safetensors.torch import load_file

    from adrpo_engine.export import export_comfyui_lora

    config, run_dir, _, result = preset_run
    state = load_file(str(export_comfyui_lora(run_dir, tmp_path / "shapes_lora.safetensors", 2)))
    transformer = load_pipeline(str(shapes_sd3_path())).transformer
    assert len(apply_comfyui_lora(transformer, state)) == len(state) // 3 > 0

    policy = SD3Policy(load_pipeline("builtin:shapes-sd3"), torch.device("cpu"), torch.float32)
    policy.add_lora(config.lora)
    policy.load_adapter(result.checkpoint)
    channels, size = transformer.config.in_channels, transformer.config.sample_size
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(3))
    cond, t = policy.encode_prompts(PROMPTS), torch.tensor([0.3, 0.8])
    fine_tuned = policy.velocity(x, t, cond)
    assert torch.allclose(velocity(transformer, x, t, cond), fine_tuned, atol=1e-5)
    reference = velocity(load_pipeline(str(shapes_sd3_path())).transformer, x, t, cond)
    assert not torch.allclose(reference, fine_tuned, atol=1e-6)  # the LoRA is not a no-op
