"""The full builtin:shapes-sd3 build (cached in the test data dir after the first run) meets its quality
targets: single-object prompts >= 0.7 on the verifier, held-out compositional prompts <= 0.5, so RL has room."""

import pytest
import torch

from adrpo_engine.models.sd3 import SD3Policy, load_pipeline
from adrpo_engine.rewards.image import clip_embedder
from adrpo_engine.worlds.shapes.data import compositional_prompts, single_prompts
from adrpo_engine.worlds.shapes.evaluate import evaluate
from adrpo_engine.worlds.shapes.recipe import RECIPE_ENV

pytestmark = pytest.mark.slow

# Measured 2026-12-02 on the full recipe v2 (VAE reconstructions verify at 0.96; 1,000 transformer steps):
# single-object verifier 0.27, held-out compositional 0.38 (0.365 / 0.418 on another machine, 2026-12-04: builds are
# not bit-identical across CPUs): right colours, ragged shapes
# (docs/results/shapes_recipe_diagnosis.md). The target is not met yet; strict, so the test fails loudly once a
# recipe meets it.
SHORT_OF_TARGET = pytest.mark.xfail(
    strict=True, reason="full recipe v2 short of target: single-object verifier 0.27-0.37 < 0.7 (shapes ragged)"
)


@pytest.fixture
def full_policy(monkeypatch):
    monkeypatch.setenv(RECIPE_ENV, "full")
    clip_embedder.cache_clear()  # the reduced CLIP may be loaded under the same name
    yield SD3Policy(load_pipeline("builtin:shapes-sd3"), torch.device("cpu"), torch.float32)
    clip_embedder.cache_clear()


@SHORT_OF_TARGET
def test_full_build_quality_targets(full_policy):
    single = evaluate(full_policy, single_prompts(), samples=8, steps=10, adapter=False)
    held_out = evaluate(full_policy, compositional_prompts(held_out=True)[::3], samples=8, steps=10, adapter=False)
    print(f"single {single}\nheld-out compositional {held_out}")
    assert single["verifier"] >= 0.7
    assert held_out["verifier"] <= 0.5
    assert single["diversity"] > 0 and held_out["diversity"] > 0
