"""The small interface through which a trainer reports; the CLI, the job service and tests implement it.

A trainer calls, in order: ``on_phase`` whenever it moves to another phase (loading or building the
model, sampling the reference, training), ``on_start`` once, then per step ``on_step`` (metrics),
sometimes ``on_samples`` and ``on_checkpoint``, and polls ``should_stop`` after each step; ``on_log``
any time. Sinks must not raise for a metric they do not know: the metric names are listed in ``metrics``.

Code far below the trainer (a built-in model's one-off build, minutes on a CPU) reports its progress
with :func:`report_phase` / :class:`StepReporter`; the trainer routes those reports to its sink through
:func:`reporting_phases`, so model code needs no sink argument and stays silent outside a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# The phases a job goes through (``Phase.name``); the service shows them beside the status.
LOADING = "loading model"
BUILDING = "building model"
EVALUATING = "evaluating"
TRAINING = "training"


@dataclass(frozen=True)
class Phase:
    """What a run is doing now: a phase name, a readable detail and, when known, progress ``done/total``."""

    name: str
    detail: str = ""
    done: int | None = None
    total: int | None = None

    def describe(self) -> str:
        """One line for people: ``building model · builtin:tiny-lm (once): pre-training step 300/1500``."""
        return f"{self.name} · {self.detail}" if self.detail else self.name


_phase_callback: ContextVar[Callable[[Phase], None] | None] = ContextVar("adrpo_phase_callback", default=None)


@contextmanager
def reporting_phases(callback: Callable[[Phase], None]) -> Iterator[None]:
    """Send :func:`report_phase` calls made inside the block (any depth, this thread) to ``callback``."""
    token = _phase_callback.set(callback)
    try:
        yield
    finally:
        _phase_callback.reset(token)


def report_phase(phase: Phase) -> None:
    """Tell the run in progress (if any) what is happening; a no-op outside :func:`reporting_phases`."""
    callback = _phase_callback.get()
    if callback is not None:
        callback(phase)


class StepReporter:
    """Reports a long loop's progress as a phase, at most every ``interval_s`` seconds (and at its end),
    so a per-step call costs nothing measurable and the sink writes about once a second."""

    def __init__(self, name: str, detail: str, total: int, interval_s: float = 1.0) -> None:
        self.name, self.detail, self.total, self.interval_s = name, detail, total, interval_s
        self._last = float("-inf")

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done >= self.total or now - self._last >= self.interval_s:
            self._last = now
            report_phase(Phase(self.name, f"{self.detail} step {done}/{self.total}", done, self.total))


# What a logged sample is (``Sample.kind``, ``KindSpec.sample_kind``): the studio picks its view by it.
# Sample kinds are not job kinds (an audio job's samples are AUDIO_SAMPLE, an llm job's TEXT_SAMPLE);
# code compares against these names, never against a job kind's.
TEXT_SAMPLE = "text"
IMAGE_SAMPLE = "image"
AUDIO_SAMPLE = "audio"  # a text completion of an audio prompt, with the prompt's clip
SAMPLE_KINDS = (TEXT_SAMPLE, IMAGE_SAMPLE, AUDIO_SAMPLE)


@dataclass
class Sample:
    """One generated output, logged for the studio: a text completion, an image file, or a text answer to
    an audio clip (with the clip)."""

    step: int
    prompt: str
    seed: int
    kind: str  # one of SAMPLE_KINDS
    role: str = "policy"  # "policy" (the model being trained) | "reference" (adapter disabled)
    text: str | None = None
    image_path: str | None = None  # relative to the run directory
    audio_path: str | None = None  # the prompt's clip (WAV), relative to the run directory
    reward: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ProgressSink(Protocol):
    def on_phase(self, phase: Phase) -> None: ...

    def on_start(self, total_steps: int, start_step: int) -> None: ...

    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_samples(self, step: int, samples: list[Sample]) -> None: ...

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_log(self, message: str) -> None: ...

    def should_stop(self) -> bool: ...


class NullSink:
    """Ignores everything; the base of sinks that care about a few events only."""

    def on_phase(self, phase: Phase) -> None:
        pass

    def on_start(self, total_steps: int, start_step: int) -> None:
        pass

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        pass

    def on_checkpoint(self, step: int, path: Path) -> None:
        pass

    def on_log(self, message: str) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class RecordingSink(NullSink):
    """Keeps every event in memory (tests, notebooks)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.steps: dict[int, dict[str, float]] = {}
        self.samples: list[Sample] = []
        self.checkpoints: list[tuple[int, Path]] = []
        self.logs: list[str] = []
        self.phases: list[Phase] = []
        self.stop_after = stop_after

    def on_phase(self, phase: Phase) -> None:
        self.phases.append(phase)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.steps[step] = dict(metrics)

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        self.samples.extend(samples)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.checkpoints.append((step, path))

    def on_log(self, message: str) -> None:
        self.logs.append(message)

    def should_stop(self) -> bool:
        return self.stop_after is not None and bool(self.steps) and max(self.steps) >= self.stop_after


class FanOutSink:
    """Sends each event to several sinks; stops when any of them asks to."""

    def __init__(self, *sinks: ProgressSink) -> None:
        self.sinks = sinks

    def on_phase(self, phase: Phase) -> None:
        for sink in self.sinks:
            phase_handler(sink)(phase)

    def on_start(self, total_steps: int, start_step: int) -> None:
        for sink in self.sinks:
            sink.on_start(total_steps, start_step)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.on_step(step, metrics)

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        for sink in self.sinks:
            sink.on_samples(step, samples)

    def on_checkpoint(self, step: int, path: Path) -> None:
        for sink in self.sinks:
            sink.on_checkpoint(step, path)

    def on_log(self, message: str) -> None:
        for sink in self.sinks:
            sink.on_log(message)

    def should_stop(self) -> bool:
        return any(sink.should_stop() for sink in self.sinks)


def phase_handler(sink: Any) -> Callable[[Phase], None]:
    """The sink's ``on_phase``, or a no-op for a sink written before phases existed."""
    return getattr(sink, "on_phase", None) or (lambda _phase: None)


class JsonlMetricsSink(NullSink):
    """Appends one JSON object per step (``{"step": n, <metric>: value, ...}``) to ``metrics.jsonl``.

    On resume from step k, lines of steps > k (written after the checkpoint, before a crash) are
    dropped first, so the file holds each step exactly once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [row for row in read_metrics_jsonl(self.path) if row["step"] <= start_step]
        with self.path.open("w") as handle:
            for row in kept:
                handle.write(json.dumps(row) + "\n")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
            handle.flush()


def read_metrics_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a torn last line (a crash mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
