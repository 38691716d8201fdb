"""Kinds of job and the built-in worlds: the one registry the tree asks instead of switching on names.

A *kind* of job (``llm``, ``flow``) is one frozen :class:`KindSpec`: its trainer and comparer, what its
samples and rewards are, the metric that measures its divergence to the reference, the metrics it logs,
the algorithms it runs, its default clipping rule and the smallest config the studio starts it from.
Trainers, comparers and model factories are named as ``"module:attribute"`` strings and imported on
use, so this module imports nothing heavy and nothing of the engine but ``metrics`` and ``errors``
(the schema in ``config`` asks it which kinds exist).

A *built-in world* is data for a kind: :class:`BuiltinModel` entries (models the project builds and
caches itself, each with its thread rule) and :class:`PromptSource` entries (``builtin:NAME`` prompt
lists). The registry is eager: every name is known without importing the module that builds it, so
the job service checks a submission against the same lists the loaders accept.

Adding a world of an existing kind = ``register_builtin_model`` / ``register_prompt_source`` calls at the
end of this file. Adding a kind = one ``register_kind(KindSpec(...))`` plus its trainer, comparer and
model files (docs/architecture.md, "Adding a kind of job").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from types import MappingProxyType
from typing import Any

from . import metrics as M
from .errors import ConfigError
from .progress import AUDIO_SAMPLE, IMAGE_SAMPLE, TEXT_SAMPLE

BUILTIN_PREFIX = "builtin:"
# The kind the studio's Launch form opens on (its CPU demo is the quickest to show).
DEFAULT_KIND = "flow"
# Human names of the algorithms (config.Algorithm), for messages and labels.
ALGORITHM_NAMES = {"adrpo": "ADRPO", "fixed": "fixed beta", "orw": "ORW-CFM-W2", "dpo": "Diffusion-DPO"}


@dataclass(frozen=True)
class KindSpec:
    """Everything the tree needs to know about one kind of job."""

    name: str
    label: str  # how the studio names the kind
    summary: str  # its loss and divergence, in a few words (the schema's description of `kind`)
    trainer: str  # "module:Class": a trainers.base.BaseTrainer subclass taking (config, run_dir, sink)
    comparer: str  # "module:function": (config, adapter_dir, prompt, seed, num_samples, out_dir) -> [Sample]
    sample_kind: str  # what its logged samples are: one of progress.SAMPLE_KINDS (progress.Sample.kind)
    reward_kind: str  # the reward signature its trainer calls: "text" | "image" (rewards.RegisteredReward.kind)
    divergence: str  # the metric name of its divergence to the reference model
    metric_names: tuple[str, ...]  # the metrics its trainer logs every step
    spread_metrics: tuple[str, ...]  # its entropy/diversity axis (the studio's "spread" chart)
    algorithms: tuple[str, ...]  # the config.Algorithm values it runs
    # Algorithms whose loss needs a_min > -beta0 (they default to -beta0/2 instead of -beta0).
    bounded_a_min: frozenset[str] = frozenset()
    # Algorithms whose loss needs beta0 > 0 whenever the clip range [a_min, a_max] is not empty (beta_i then
    # takes both signs, and a negative one makes the loss linear in -divergence: no lower bound).
    positive_beta0_with_clip: frozenset[str] = frozenset()
    # "module:callable(config, device, dtype)" building the model of a hub id or local path, for kinds
    # whose trainer loads through a factory (built-in models may name their own, see BuiltinModel.policy).
    policy_factory: str | None = None
    # "module:function(config, row, seed, count, out_dir) -> (outputs, reward_args, reward_columns)": the
    # reference model's samples of one prompt row for a reward dry run (adrpo_engine.dry_run); None: no dry run.
    reference_sampler: str | None = None
    # The smallest valid config beyond name, kind and model: the studio's "custom" start.
    starter: Mapping[str, Any] = field(default_factory=dict)
    # "module:function(config)" raising ConfigError for inputs the schema cannot judge (an audio job's inline
    # clips: format, sample rate, duration); the job service calls it at submission.
    input_check: str | None = None

    def starter_config(self) -> dict[str, Any]:
        """A fresh, mutable copy of :attr:`starter`."""
        return _thaw(self.starter)

    def default_a_min(self, algorithm: str, beta0: float) -> float:
        """The lower advantage clip when a config leaves ``a_min`` empty."""
        return -0.5 * beta0 if algorithm in self.bounded_a_min else -beta0

    def a_min_bounded(self, algorithm: str) -> bool:
        """True when ``algorithm`` of this kind needs ``a_min > -beta0`` (its loss is unbounded otherwise)."""
        return algorithm in self.bounded_a_min

    def load_trainer(self) -> Any:
        return load_target(self.trainer)

    def load_comparer(self) -> Any:
        return load_target(self.comparer)


@dataclass(frozen=True)
class BuiltinModel:
    """A model the project builds from configs and caches (``builtin:NAME``; no download)."""

    name: str  # "builtin:NAME"
    kind: str | None  # the job kind it is a base model of; None: a helper model (e.g. a reward's CLIP)
    summary: str
    path: str | None = None  # "module:function() -> Path" of its cached folder (built on first use)
    policy: str | None = None  # "module:callable(config, device, dtype)" when it is not loaded from a path
    threads: int | None = None  # torch intra-op threads for jobs on it (None: the process default)
    # "module:function(rewards) -> measure(images, group_size) -> {name: value}": its per-step diversity
    # (None: the kind's generic measure, e.g. CLIP or pixel distances for images).
    diversity: str | None = None
    # For a helper model a reward row may name as its ``model``: the reward need it serves
    # ("reward_model" | "clip_model", the ``needs`` of adrpo_engine.rewards).
    serves: str | None = None


@dataclass(frozen=True)
class PromptSource:
    """A built-in prompt list (``prompts.file`` or ``prompts.dataset`` = ``builtin:NAME``)."""

    name: str  # "builtin:NAME"
    kind: str  # the job kind whose built-in models understand these prompts
    summary: str
    rows: str  # "module:function() -> list[dict]": rows with a "prompt" column (and any other columns)


_KINDS: dict[str, KindSpec] = {}
_MODELS: dict[str, BuiltinModel] = {}
_SOURCES: dict[str, PromptSource] = {}
KINDS: Mapping[str, KindSpec] = MappingProxyType(_KINDS)
BUILTIN_MODELS: Mapping[str, BuiltinModel] = MappingProxyType(_MODELS)
PROMPT_SOURCES: Mapping[str, PromptSource] = MappingProxyType(_SOURCES)


def _builtin_name(name: str) -> str:
    if not name.startswith(BUILTIN_PREFIX) or name == BUILTIN_PREFIX:
        raise ValueError(f"built-in names start with {BUILTIN_PREFIX!r} (got {name!r})")
    return name


def register_kind(spec: KindSpec) -> KindSpec:
    if spec.name in _KINDS:
        raise ValueError(f"kind {spec.name!r} is already registered")
    _KINDS[spec.name] = spec
    return spec


def register_builtin_model(model: BuiltinModel) -> BuiltinModel:
    _builtin_name(model.name)
    if model.kind is not None and model.kind not in _KINDS:
        raise ValueError(f"built-in model {model.name!r}: unknown kind {model.kind!r}")
    _MODELS[model.name] = model
    return model


def register_prompt_source(source: PromptSource) -> PromptSource:
    _builtin_name(source.name)
    if source.kind not in _KINDS:
        raise ValueError(f"prompt source {source.name!r}: unknown kind {source.kind!r}")
    _SOURCES[source.name] = source
    return source


# ----------------------------------------------------------------------------------------------
# Queries


def kind_names() -> tuple[str, ...]:
    return tuple(_KINDS)


def get_kind(name: str) -> KindSpec:
    """The spec of kind ``name``; a ConfigError naming the field ``kind`` if there is none."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"kind: unknown kind {name!r} (choose from {', '.join(_KINDS)})") from None


def builtin_models(kind: str | None = None) -> tuple[BuiltinModel, ...]:
    """The built-in base models of ``kind`` (every job model if None), the CPU demo first."""
    return tuple(m for m in _MODELS.values() if m.kind is not None and (kind is None or m.kind == kind))


def builtin_model(name: str) -> BuiltinModel | None:
    return _MODELS.get(name)


def builtin_reward_models(needs: str | None = None) -> tuple[BuiltinModel, ...]:
    """The built-in models a reward row may name as its ``model`` (of reward need ``needs``, or all)."""
    return tuple(m for m in _MODELS.values() if m.serves is not None and (needs is None or m.serves == needs))


def prompt_sources(kind: str | None = None) -> tuple[PromptSource, ...]:
    return tuple(s for s in _SOURCES.values() if kind is None or s.kind == kind)


def prompt_source(name: str) -> PromptSource | None:
    return _SOURCES.get(name)


def builtin_model_of(name: str, kind: str) -> BuiltinModel:
    """The built-in base model ``name`` of job kind ``kind``; a ConfigError naming ``model.name_or_path``
    (with the allowed names) if there is none."""
    model = _MODELS.get(name)
    if model is None or model.kind != kind:
        allowed = ", ".join(m.name for m in builtin_models(kind))
        raise ConfigError(f"model.name_or_path: unknown built-in {kind} model {name!r} (choose from {allowed})")
    return model


def resolve_model_path(name_or_path: str, kind: str | None = None) -> str:
    """A hub id or path unchanged; a built-in model's cached folder (built on first use). ``kind`` given:
    the model must be a base model of that kind; None: any built-in with a folder (e.g. a reward's CLIP)."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    model = builtin_model_of(name_or_path, kind) if kind is not None else _MODELS.get(name_or_path)
    if model is None or model.path is None:
        known = ", ".join(m.name for m in _MODELS.values() if m.path is not None)
        raise ConfigError(f"model.name_or_path: {name_or_path!r} is not a built-in model folder (known: {known})")
    return str(load_target(model.path)())


def threads_for(model_name: str) -> int | None:
    """The thread rule: the intra-op thread count for a job on ``model_name`` (None: the process default)."""
    model = _MODELS.get(model_name)
    return model.threads if model is not None else None


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(item) for item in value]
    return value


def load_target(target: str) -> Any:
    """Import ``"package.module:attribute.attribute"`` and return the attribute."""
    module_name, _, attribute = target.partition(":")
    value: Any = import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


# ----------------------------------------------------------------------------------------------
# The kinds


register_kind(
    KindSpec(
        name="flow",
        label="Text-to-image (flow matching)",
        summary="flow matching, W2",
        trainer="adrpo_engine.trainers.flow:FlowTrainer",
        comparer="adrpo_engine.comparisons:compare_images",
        sample_kind=IMAGE_SAMPLE,
        reward_kind="image",
        divergence=M.W2,
        metric_names=M.FLOW,
        spread_metrics=(M.DIVERSITY,),
        algorithms=("adrpo", "fixed", "orw", "dpo"),
        # a*||v-u||^2 + beta0*||v-v_ref||^2 has quadratic weight a + beta0: it must stay > 0.
        bounded_a_min=frozenset({"fixed"}),
        positive_beta0_with_clip=frozenset({"adrpo"}),
        policy_factory="adrpo_engine.models.sd3:SD3Policy.from_config",
        reference_sampler="adrpo_engine.dry_run:image_samples",
        starter=MappingProxyType({"rewards": ({"name": "digits:even"},), "prompts": {"texts": ("any digit",)}}),
    )
)

register_kind(
    KindSpec(
        name="llm",
        label="LLM (GRPO)",
        summary="GRPO, KL",
        trainer="adrpo_engine.trainers.llm:LLMTrainer",
        comparer="adrpo_engine.comparisons:compare_texts",
        sample_kind=TEXT_SAMPLE,
        reward_kind="text",
        divergence=M.KL,
        metric_names=M.LLM,
        spread_metrics=(M.ENTROPY, M.DIVERSITY),
        algorithms=("adrpo", "fixed"),
        reference_sampler="adrpo_engine.dry_run:text_samples",
        starter=MappingProxyType(
            {"rewards": ({"name": "builtin:tiny-lm-task"},), "prompts": {"dataset": "builtin:tiny-lm-task"}}
        ),
    )
)


register_kind(
    KindSpec(
        name="audio",
        label="Audio-language model (GRPO)",
        summary="GRPO on (clip, question) prompts, KL",
        trainer="adrpo_engine.trainers.audio_lm:AudioLMTrainer",
        comparer="adrpo_engine.comparisons:compare_audio",
        sample_kind=AUDIO_SAMPLE,
        reward_kind="text",  # completions are text: every text reward applies (mc_answer, mc_format, ...)
        divergence=M.KL,
        metric_names=M.LLM,
        spread_metrics=(M.ENTROPY, M.DIVERSITY),
        algorithms=("adrpo", "fixed"),
        starter=MappingProxyType({"rewards": ({"name": "mc_answer"},), "prompts": {"dataset": "builtin:audio-tones"}}),
        reference_sampler="adrpo_engine.dry_run:audio_samples",
        input_check="adrpo_engine.audio_io:check_inline_clips",
    )
)


# ----------------------------------------------------------------------------------------------
# The built-in worlds (CPU-sized: the project builds the data, the model and the reward's truth)

# digits: scikit-learn's 8x8 digits, a class-conditional flow MLP, a digit classifier as the reward.
register_builtin_model(
    BuiltinModel(
        "builtin:digits-flow",
        "flow",
        "class-conditional flow-matching MLP on 8x8 digits (CPU demo)",
        policy="adrpo_engine.models.digits:DigitsPolicy.from_config",
        threads=1,
        diversity="adrpo_engine.rewards.image:digits_diversity_measure",
    )
)
register_prompt_source(
    PromptSource(
        "builtin:digits",
        "flow",
        "the prompts builtin:digits-flow understands: 'any digit', 'digit K'",
        rows="adrpo_engine.prompt_lists:digit_prompts",
    )
)

# tiny-sd3: an architecture-true miniature of Stable Diffusion 3 (noise-like images: exercises the code).
register_builtin_model(
    BuiltinModel(
        "builtin:tiny-sd3",
        "flow",
        "a randomly initialised miniature StableDiffusion3Pipeline",
        path="adrpo_engine.models.tiny_sd3:tiny_sd3_path",
    )
)
register_builtin_model(
    BuiltinModel(
        "builtin:tiny-clip",
        None,
        "a randomly initialised miniature CLIPModel (a clip_score model)",
        path="adrpo_engine.models.tiny_sd3:tiny_clip_path",
        serves="clip_model",
    )
)
register_prompt_source(
    PromptSource(
        "builtin:t2i-prompts",
        "flow",
        "40 varied text-to-image prompts written for this project",
        rows="adrpo_engine.prompt_lists:t2i_prompts",
    )
)

# tiny-lm: a 2-layer Qwen2 pre-trained here on generated topic lists; the rule reward builtin:tiny-lm-task.
register_builtin_model(
    BuiltinModel(
        "builtin:tiny-lm",
        "llm",
        "2-layer Qwen2 pre-trained on generated topic lists (CPU demo)",
        path="adrpo_engine.models.tiny_lm:tiny_lm_path",
        threads=1,
    )
)
register_builtin_model(
    BuiltinModel(
        "builtin:tiny-lm-rm",
        None,
        "2-layer Qwen2ForSequenceClassification trained here to score the tiny-lm list task (a reward_model model)",
        path="adrpo_engine.models.tiny_lm_rm:tiny_lm_rm_path",
        threads=1,
        serves="reward_model",
    )
)
register_prompt_source(
    PromptSource(
        "builtin:tiny-lm-task",
        "llm",
        "topic prompts of the tiny-lm list task (with a topic column)",
        rows="adrpo_engine.models.tiny_lm:task_rows",
    )
)

# shapes: generated captioned images of flat shapes, a miniature SD3 pre-trained here, its own CLIP, and
# the rule-based shapes:geneval verifier (adrpo_engine/worlds/shapes, docs/flow.md).
register_builtin_model(
    BuiltinModel(
        "builtin:shapes-sd3",
        "flow",
        "miniature StableDiffusion3Pipeline pre-trained on captioned shapes (CPU demo)",
        path="adrpo_engine.worlds.shapes.builtins:shapes_sd3_path",
        threads=1,
        diversity="adrpo_engine.worlds.shapes.builtins:diversity_measure",
    )
)
register_builtin_model(
    BuiltinModel(
        "builtin:shapes-clip",
        None,
        "CLIPModel trained on captioned shapes (a clip_score model, ClipDiversity)",
        path="adrpo_engine.worlds.shapes.builtins:shapes_clip_path",
        serves="clip_model",
    )
)
register_prompt_source(
    PromptSource(
        "builtin:shapes-single",
        "flow",
        "the 12 one-object captions of the shapes world ('a red circle')",
        rows="adrpo_engine.worlds.shapes.prompts:shapes_single",
    )
)
register_prompt_source(
    PromptSource(
        "builtin:shapes-compose",
        "flow",
        "compositional shapes captions on seen colour/shape combinations (training)",
        rows="adrpo_engine.worlds.shapes.prompts:shapes_compose",
    )
)
register_prompt_source(
    PromptSource(
        "builtin:shapes-heldout",
        "flow",
        "compositional shapes captions on held-out combinations (evaluation)",
        rows="adrpo_engine.worlds.shapes.prompts:shapes_heldout",
    )
)

# audio tones: generated clips of tones, beeps and noise with multiple-choice questions about them, a
# miniature Qwen2-Audio pre-trained here, and the mc_answer reward (adrpo_engine/worlds/audio, docs/audio.md).
register_builtin_model(
    BuiltinModel(
        "builtin:tiny-audio-lm",
        "audio",
        "miniature Qwen2AudioForConditionalGeneration pre-trained on generated clips (CPU demo)",
        path="adrpo_engine.worlds.audio.model:tiny_audio_lm_path",
        threads=1,
    )
)
register_prompt_source(
    PromptSource(
        "builtin:audio-tones",
        "audio",
        "512 generated clips with multiple-choice questions (beep counts, pitch, duration, noise): training",
        rows="adrpo_engine.worlds.audio.prompts:audio_tones",
    )
)
register_prompt_source(
    PromptSource(
        "builtin:audio-tones-heldout",
        "audio",
        "128 further clips of the same four questions, never trained on: evaluation",
        rows="adrpo_engine.worlds.audio.prompts:audio_tones_heldout",
    )
)
