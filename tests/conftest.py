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


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield
