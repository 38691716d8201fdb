"""The small interface through which a trainer reports; the CLI, the job service and tests implement it.

A trainer calls, in order: ``on_start`` once, then per step ``on_step`` (metrics), sometimes
``on_samples`` and ``on_checkpoint``, and polls ``should_stop`` after each step; ``on_log`` any time.
Sinks must not raise for a metric they do not know: the metric names are listed in ``metrics``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass
class Sample:
    """One generated output, logged for the studio: a text completion or an image file."""

    step: int
    prompt: str
    seed: int
    kind: str  # "text" | "image"
    role: str = "policy"  # "policy" (the model being trained) | "reference" (adapter disabled)
    text: str | None = None
    image_path: str | None = None  # relative to the run directory
    reward: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ProgressSink(Protocol):
    def on_start(self, total_steps: int, start_step: int) -> None: ...

    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_samples(self, step: int, samples: list[Sample]) -> None: ...

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_log(self, message: str) -> None: ...

    def should_stop(self) -> bool: ...


class NullSink:
    """Ignores everything; the base of sinks that care about a few events only."""

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
        self.stop_after = stop_after

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
