"""The built-in digits models: a class-conditional flow-matching network and a digit classifier.

Both are trained on scikit-learn's bundled 8x8 handwritten digits (``load_digits``: 1797 images, no
download) the first time they are needed, then loaded from the cache
``paths.builtin_models_dir() / "digits-flow-v1"``. Bump :data:`CACHE_VERSION` when the architecture or
the training recipe changes, so an old cache is never loaded into a new network.

Data space: an image is 64 pixel values in ``[-1, 1]`` (``x = 2 * pixel / 16 - 1``); images for
rewards are ``(B, 1, 8, 8)`` in ``[0, 1]``. Time convention (as everywhere in the engine, see
``objectives``): ``x_t = (1 - t) * x_data + t * noise``, velocity target ``noise - x_data``.

Prompts of the digits model: ``"any digit"`` (the null class: unconditional) or ``"digit K"`` with
``K`` in 0..9 (class K); case and surrounding spaces are ignored. The null class is also what
classifier-free guidance uses as its unconditional branch.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..config import ConfigError, JobConfig, LoraConfig
from ..paths import builtin_models_dir, publish_cache, staging_dir
from ..progress import BUILDING, StepReporter
from ..threads import torch_threads
from .flow_policy import Cond, FlowPolicy

MODEL_NAME = "builtin:digits-flow"
CACHE_VERSION = "digits-flow-v1"
NUM_CLASSES = 10
NULL_CLASS = NUM_CLASSES  # index of the "any digit" embedding
IMAGE_SIDE = 8
DATA_DIM = IMAGE_SIDE * IMAGE_SIDE
# Linear layers of the flow network; the default LoRA targets.
LORA_TARGETS = ["inp", "hid1", "hid2", "out"]

BUILD_NOTE = "builtin:digits-flow is built once"
# Pre-training recipe (fixed step counts, not a time budget, so every machine builds the same model).
FLOW_TRAIN_STEPS = 6000
FLOW_BATCH = 256
FLOW_LR = 2e-3
CLASS_DROPOUT = 0.15  # fraction of training labels replaced by the null class (for CFG / "any digit")
CLASSIFIER_STEPS = 600

_PROMPT = re.compile(r"^\s*(?:(any digit)|digit\s+([0-9]))\s*$", re.IGNORECASE)


def prompt_to_class(prompt: str) -> int:
    """``"any digit"`` -> the null class, ``"digit 3"`` -> 3; anything else is a ConfigError."""
    match = _PROMPT.match(prompt)
    if not match:
        raise ConfigError(
            f"prompts: {prompt!r} is not a prompt of {MODEL_NAME} (use 'any digit' or 'digit K' with K in 0..9)"
        )
    return NULL_CLASS if match.group(1) else int(match.group(2))


def load_digit_data() -> tuple[Tensor, Tensor]:
    """All 1797 digits as ``(N, 64)`` floats in ``[0, 1]`` and their labels ``(N,)``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    return images, labels


def to_model_space(images01: Tensor) -> Tensor:
    return images01 * 2.0 - 1.0


def to_images(x: Tensor) -> Tensor:
    """Model-space samples ``(B, 64)`` -> images ``(B, 1, 8, 8)`` in ``[0, 1]``."""
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0).view(-1, 1, IMAGE_SIDE, IMAGE_SIDE)


# ----------------------------------------------------------------------------------------------
# The flow network


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of ``t`` in [0, 1] (frequencies 1..1000, as for diffusion timesteps)."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, device=t.device))
    angles = t.float().unsqueeze(1) * freqs.unsqueeze(0) * math.pi
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class DigitsFlowNet(nn.Module):
    """Velocity field ``v(x_t, t, class)`` on 64-pixel digits: an MLP on [x_t, emb(t), emb(class)]."""

    def __init__(self, hidden: int = 256, embed: int = 64) -> None:
        super().__init__()
        self.embed = embed
        self.class_embedding = nn.Embedding(NUM_CLASSES + 1, embed)
        self.inp = nn.Linear(DATA_DIM + 2 * embed, hidden)
        self.hid1 = nn.Linear(hidden, hidden)
        self.hid2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, DATA_DIM)
        self.act = nn.SiLU()

    def forward(self, x_t: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        features = torch.cat([x_t, time_embedding(t, self.embed), self.class_embedding(labels)], dim=1)
        h = self.act(self.inp(features))
        h = h + self.act(self.hid1(h))
        h = h + self.act(self.hid2(h))
        return self.out(h)


class DigitClassifier(nn.Module):
    """A small MLP on ``(B, 1, 8, 8)`` images in [0, 1]: ``features`` (64-d) and class ``probabilities``."""

    def __init__(self, hidden: int = 128, feature_dim: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(DATA_DIM, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim), nn.ReLU()
        )
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features(self, images: Tensor) -> Tensor:
        return self.body(_as_digit_pixels(images))

    def logits(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    def probabilities(self, images: Tensor) -> Tensor:
        return torch.softmax(self.logits(images), dim=-1)


def _as_digit_pixels(images: Tensor) -> Tensor:
    """Accept ``(B, 64)`` or ``(B, C, H, W)`` images in [0, 1]: grey, resized to 8x8, flattened."""
    if images.dim() == 2 and images.shape[1] == DATA_DIM:
        return images.float()
    if images.dim() != 4:
        raise ValueError(f"digit images must be (B, C, H, W) in [0, 1], got shape {tuple(images.shape)}")
    grey = images.float().mean(dim=1, keepdim=True)
    if grey.shape[-2:] != (IMAGE_SIDE, IMAGE_SIDE):
        grey = nn.functional.interpolate(grey, size=(IMAGE_SIDE, IMAGE_SIDE), mode="area")
    return grey.flatten(1)


# ----------------------------------------------------------------------------------------------
# Pre-training (once per cache)


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
        progress(done)
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
        x = images[train_idx]
        x = (x + 0.05 * torch.randn(x.shape, generator=generator)).clamp(0.0, 1.0)
        loss = nn.functional.cross_entropy(model.logits(x), labels[train_idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress(done)
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


def build_cache(target: Path) -> None:
    """Train both models and write them to ``target`` atomically (a temp folder renamed at the end)."""
    with torch_threads(1):
        _build_cache(target)


def _build_cache(target: Path) -> None:
    started = time.perf_counter()
    staging = staging_dir(target)
    flow = train_flow_net()
    flow_seconds = time.perf_counter() - started
    classifier, accuracy = train_classifier()
    save_file(flow.state_dict(), str(staging / "flow.safetensors"))
    save_file(classifier.state_dict(), str(staging / "classifier.safetensors"))
    info = {
        "version": CACHE_VERSION,
        "flow_train_steps": FLOW_TRAIN_STEPS,
        "flow_train_seconds": round(flow_seconds, 1),
        "classifier_heldout_accuracy": round(accuracy, 4),
        "build_seconds": round(time.perf_counter() - started, 1),
        "prompts": "'any digit' (null class) or 'digit K', K in 0..9",
    }
    (staging / "info.json").write_text(json.dumps(info, indent=2))
    publish_cache(staging, target)


_LOADED: DigitsModels | None = None


def load_digits_models() -> DigitsModels:
    """The cached digits flow network and classifier (built on first use, ~30-60 s on 2 cores).

    Loaded once per process; callers get fresh copies of the flow net via ``copy.deepcopy`` if they
    modify it (the trainer wraps its own copy with LoRA)."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    target = cache_dir()
    if not (target / "info.json").is_file():
        build_cache(target)
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


def class_entropy(probabilities: Tensor) -> float:
    """Entropy (nats) of the mean predicted-class distribution of a set of samples: ln 10 = uniform over
    all digits, ln 5 = uniform over the five even ones, 0 = all samples read as one digit (collapse)."""
    mean = probabilities.float().mean(dim=0).clamp_min(1e-12)
    return float(-(mean * mean.log()).sum().detach())


EVEN_CLASSES = (0, 2, 4, 6, 8)


def even_spread(probabilities: Tensor) -> float:
    """Entropy (nats) of the predicted distribution restricted to the even digits and renormalised:
    ln 5 = 1.61 when a set of samples covers the five even digits evenly, 0 when it collapses onto one."""
    even = probabilities[:, list(EVEN_CLASSES)].float()
    return class_entropy(even / even.sum(dim=1, keepdim=True).clamp_min(1e-12))


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance over all pairs of rows (0 for fewer than two rows)."""
    n = features.shape[0]
    if n < 2:
        return 0.0
    distances = torch.cdist(features.float(), features.float())
    return float(distances.sum() / (n * (n - 1)))



# ----------------------------------------------------------------------------------------------
# The digits model as a flow policy (LoRA via peft on the torch module)


class DigitsPolicy(FlowPolicy):
    """``builtin:digits-flow`` behind the :class:`FlowPolicy` interface; samples are 64-d vectors."""

    name = MODEL_NAME
    eval_samples = 16

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.device = torch.device(device)
        # The network is tiny: bf16 would only add rounding noise, so it always runs in float32.
        self.dtype = torch.float32
        self.model: nn.Module = fresh_flow_net().to(self.device)
        self.peft_model = None

    @classmethod
    def from_config(cls, config: JobConfig, device: torch.device, dtype: torch.dtype) -> DigitsPolicy:
        """The factory ``kinds`` names for ``builtin:digits-flow``."""
        return cls(device=device, dtype=dtype)

    def encode_prompts(self, prompts: list[str]) -> Cond:
        labels = [prompt_to_class(prompt) for prompt in prompts]
        return {"labels": torch.tensor(labels, dtype=torch.long, device=self.device)}

    def null_cond(self, batch: int) -> Cond:
        return {"labels": torch.full((batch,), NULL_CLASS, dtype=torch.long, device=self.device)}

    def latent_shape(self) -> tuple[int, ...]:
        return (DATA_DIM,)

    def velocity(self, x_t: Tensor, t: Tensor, cond: Cond, adapter: bool = True) -> Tensor:
        if adapter or self.peft_model is None:
            return self.model(x_t, t, cond["labels"])
        with self.peft_model.disable_adapter():
            return self.model(x_t, t, cond["labels"])

    def decode(self, latents: Tensor) -> Tensor:
        return to_images(latents)

    def add_lora(self, lora: LoraConfig) -> None:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        targets = lora.target_modules or LORA_TARGETS
        unknown = sorted(set(targets) - set(LORA_TARGETS))
        if unknown:
            raise ConfigError(f"lora.target_modules: {unknown} are not layers of {MODEL_NAME} (choose from {LORA_TARGETS})")
        peft_config = PeftLoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(targets)
        )
        self.peft_model = get_peft_model(self.model, peft_config)
        self.model = self.peft_model

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def save_adapter(self, directory: Path) -> None:
        self.peft_model.save_pretrained(str(directory))

    def load_adapter(self, directory: Path) -> None:
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        result = set_peft_model_state_dict(self.peft_model, load_peft_weights(str(directory), device=str(self.device)))
        if getattr(result, "unexpected_keys", None):
            raise ConfigError(f"adapter {directory}: unexpected weights {result.unexpected_keys[:3]}")

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    @property
    def classifier(self) -> DigitClassifier:
        return digit_classifier()
