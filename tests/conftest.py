import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Shared 2-core machines: one torch thread is faster and steadier under contention (a small MLP
# step measured 7.7 ms with 2 threads vs 3.3 ms with 1 while the other core was busy).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No model hub on these machines: a hub id must fail at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Built-in demo models are built once into this cache and reused by every test (and later runs).
os.environ.setdefault("ADRPO_DATA_DIR", str(REPO / ".adrpo-data" / "test"))
# builtin:shapes-clip / builtin:shapes-sd3 resolve to their reduced build recipe (same architectures, built in
# seconds); the full build's quality targets are checked in a slow test that asks for the full recipe.
os.environ.setdefault("ADRPO_SHAPES_RECIPE", "reduced")
# builtin:tiny-audio-lm likewise (the slow test in tests/engine/test_audio_world.py builds the full one).
os.environ.setdefault("ADRPO_AUDIO_RECIPE", "reduced")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield
