"""PickScore, the aesthetic predictor and HPSv2 on tiny random instances built from configs and saved
locally (the real weights are hub downloads; the architectures and the loading code are the same)."""

import pytest
import torch

from adrpo_engine.config import ConfigError, RewardSpec
from adrpo_engine.rewards import WeightedRewards, available_rewards
from adrpo_engine.rewards.preference import AestheticHead, to_pil


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny CLIPModel (32x32 images) saved with a full processor (image processor + tokenizer)."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    from adrpo_engine.models.tiny_sd3 import build_tiny_clip, load_clip_tokenizer

    folder = build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=3)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=load_clip_tokenizer(folder)).save_pretrained(folder)
    return folder


def images():
    torch.manual_seed(0)
    return torch.rand(3, 3, 40, 40)


def model_inputs(folder, pictures, prompts):
    from transformers import AutoProcessor, CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(images=to_pil(pictures), text=prompts, padding=True, truncation=True,
                       max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
    return model, inputs


def test_pickscore_is_the_models_own_logit_per_pair(tiny_clip):
    prompts = ["a red cat", "two dogs", "the sea at night"]
    reward = WeightedRewards([RewardSpec(name="pickscore", options={"model": str(tiny_clip), "processor": None})],
                             "image")
    scores, _ = reward(images(), prompts)
    model, inputs = model_inputs(tiny_clip, images(), prompts)
    with torch.no_grad():
        expected = model(**inputs).logits_per_image.diagonal()  # logit_scale.exp() * cos, CLIP's own forward
    torch.testing.assert_close(scores, expected.float(), rtol=1e-5, atol=1e-5)
    half, _ = WeightedRewards([RewardSpec(name="pickscore", options={"model": str(tiny_clip), "processor": str(tiny_clip),
                                                                     "scale": 0.5})], "image")(images(), prompts)
    torch.testing.assert_close(half, 0.5 * expected.float(), rtol=1e-5, atol=1e-5)


def test_aesthetic_is_the_head_on_normalised_image_embeddings(tiny_clip, tmp_path):
    torch.manual_seed(1)
    head = AestheticHead(32).eval()  # the tiny CLIP projects to 32 dimensions (ViT-L/14: 768)
    torch.save(head.state_dict(), tmp_path / "head.pth")
    reward = WeightedRewards([RewardSpec(name="aesthetic", options={"clip": str(tiny_clip),
                                                                    "head": str(tmp_path / "head.pth")})], "image")
    scores, _ = reward(images(), ["", "", ""])
    model, inputs = model_inputs(tiny_clip, images(), ["x"] * 3)
    with torch.no_grad():
        expected = head(model(**inputs).image_embeds)  # CLIP's forward returns L2-normalised embeddings
    torch.testing.assert_close(scores, expected.float(), rtol=1e-5, atol=1e-5)
    torch.save(AestheticHead(768).state_dict(), tmp_path / "big.pth")
    with pytest.raises(ConfigError, match="does not fit"):
        WeightedRewards([RewardSpec(name="aesthetic", options={"clip": str(tiny_clip),
                                                               "head": str(tmp_path / "big.pth")})], "image")
    with pytest.raises(ConfigError, match="head"):
        WeightedRewards([RewardSpec(name="aesthetic", options={"clip": str(tiny_clip), "head": "nofile"})], "image")


def test_missing_models_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="PickScore model"):
        WeightedRewards([RewardSpec(name="pickscore", options={"model": str(tmp_path / "none")})], "image")
    names = {reward.name: reward for reward in available_rewards("image")}
    for name in ("pickscore", "aesthetic", "hpsv2"):
        assert name in names and names[name].summary and names[name].options_text()


def test_hpsv2_on_a_tiny_open_clip_model(tmp_path):
    open_clip = pytest.importorskip("open_clip")  # the optional extra 'hpsv2'
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    open_clip.factory._MODEL_CONFIGS["adrpo-tiny"] = config
    torch.manual_seed(2)
    model = open_clip.create_model("adrpo-tiny").eval()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "hps.pt")
    prompts = ["a red cat", "two dogs", "the sea at night"]
    reward = WeightedRewards([RewardSpec(name="hpsv2", options={"checkpoint": str(tmp_path / "hps.pt"),
                                                                "architecture": "adrpo-tiny"})], "image")
    scores, _ = reward(images(), prompts)
    _, _, preprocess = open_clip.create_model_and_transforms("adrpo-tiny")
    pixel = torch.stack([preprocess(image) for image in to_pil(images())])
    with torch.no_grad():
        image_features, text_features, _ = model(pixel, open_clip.get_tokenizer("adrpo-tiny")(prompts))
    torch.testing.assert_close(scores, (image_features * text_features).sum(-1), rtol=1e-5, atol=1e-5)
