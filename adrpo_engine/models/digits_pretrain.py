"""Pre-training recipes of the digits world and the process-wide cache of the trained networks.

Both networks are trained the first time they are needed, then loaded from the cache
``paths.builtin_models_dir() / CACHE_VERSION``. Bump :data:`CACHE_VERSION` when an architecture or a
recipe changes, so an old cache is never loaded into a new network. Recipes are fixed step counts, not
time budgets, so every machine builds the same model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..builds import build_once
from ..paths import builtin_models_dir
from ..progress import BUILDING, StepReporter
from .digits_data import NULL_CLASS, load_digit_data, to_model_space
from .digits_nets import DigitClassifier, DigitsFlowNet

CACHE_VERSION = "digits-flow-v1"
FLOW_TRAIN_STEPS = 6000
FLOW_BATCH = 256
FLOW_LR = 2e-3
CLASS_DROPOUT = 0.15  # fraction of training labels replaced by the null class (for CFG / "any digit")
CLASSIFIER_STEPS = 600


BUILD_NOTE = "builtin:digits-flow is built once"


def train_flow_net(steps: int = FLOW_TRAIN_STEPS, seed: int = 0) -> DigitsFlowNet:
    """Conditional flow matching on all digits, labels dropped to the null class 15% of the time."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    images, labels = load_digit_data()
    data = to_model_space(images)
    net = DigitsFlowNet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=FLOW_LR, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=FLOW_LR, total_steps=steps, pct_start=0.05)
    progress = StepReporter(BUILDING, f"{BUILD_NOTE}: flow network", steps)
    for done in range(1, steps + 1):
        progress(done)
        index = torch.randint(0, data.shape[0], (FLOW_BATCH,), generator=generator)
        x_data, y = data[index], labels[index].clone()
        y[torch.rand(FLOW_BATCH, generator=generator) < CLASS_DROPOUT] = NULL_CLASS
        noise = torch.randn(x_data.shape, generator=generator)
        t = torch.rand(FLOW_BATCH, generator=generator)
        x_t = (1.0 - t[:, None]) * x_data + t[:, None] * noise
        loss = (net(x_t, t, y) - (noise - x_data)).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval()


def train_classifier(steps: int = CLASSIFIER_STEPS, seed: int = 0) -> tuple[DigitClassifier, float]:
    """The digit classifier on 80% of the digits (with light pixel noise, so it also reads imperfect
    generated digits sensibly); returns it and its accuracy on the held-out 20%."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    images, labels = load_digit_data()
    order = torch.randperm(images.shape[0], generator=generator)
    cut = int(0.8 * len(order))
    train_idx, test_idx = order[:cut], order[cut:]
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    progress = StepReporter(BUILDING, f"{BUILD_NOTE}: digit classifier", steps)
    for done in range(1, steps + 1):
        progress(done)
        x = images[train_idx]
        x = (x + 0.05 * torch.randn(x.shape, generator=generator)).clamp(0.0, 1.0)
        loss = nn.functional.cross_entropy(model.logits(x), labels[train_idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model.logits(images[test_idx]).argmax(-1) == labels[test_idx]).float().mean().item()
    return model, accuracy


@dataclass
class DigitsModels:
    flow: DigitsFlowNet
    classifier: DigitClassifier
    info: dict


def cache_dir() -> Path:
    return builtin_models_dir() / CACHE_VERSION


def build(folder: Path) -> None:
    """Train both models, write them and ``info.json`` (last) to ``folder``."""
    started = time.perf_counter()
    flow = train_flow_net()
    flow_seconds = time.perf_counter() - started
    classifier, accuracy = train_classifier()
    save_file(flow.state_dict(), str(folder / "flow.safetensors"))
    save_file(classifier.state_dict(), str(folder / "classifier.safetensors"))
    info = {
        "version": CACHE_VERSION,
        "flow_train_steps": FLOW_TRAIN_STEPS,
        "flow_train_seconds": round(flow_seconds, 1),
        "classifier_heldout_accuracy": round(accuracy, 4),
        "build_seconds": round(time.perf_counter() - started, 1),
        "prompts": "'any digit' (null class) or 'digit K', K in 0..9",
    }
    (folder / "info.json").write_text(json.dumps(info, indent=2))


_LOADED: DigitsModels | None = None


def load_digits_models() -> DigitsModels:
    """The cached digits flow network and classifier (built on first use, ~30-60 s on 2 cores).

    Loaded once per process; callers get fresh copies of the flow net via ``copy.deepcopy`` if they
    modify it (the trainer wraps its own copy with LoRA)."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    target = build_once(cache_dir(), build, marker="info.json")
    flow = DigitsFlowNet()
    flow.load_state_dict(load_file(str(target / "flow.safetensors")))
    classifier = DigitClassifier()
    classifier.load_state_dict(load_file(str(target / "classifier.safetensors")))
    for module in (flow, classifier):
        module.eval().requires_grad_(False)
    _LOADED = DigitsModels(flow, classifier, json.loads((target / "info.json").read_text()))
    return _LOADED


def digit_classifier() -> DigitClassifier:
    return load_digits_models().classifier


def fresh_flow_net() -> DigitsFlowNet:
    """A private copy of the pre-trained flow network (safe to wrap with LoRA)."""
    import copy

    return copy.deepcopy(load_digits_models().flow)
