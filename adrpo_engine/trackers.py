"""Experiment trackers (``report_to``): progress sinks that mirror a run into TensorBoard, MLflow,
Weights & Biases or Trackio.

The trainer adds one sink per requested tracker to the same fan-out that feeds metrics.jsonl and the
job store, so a tracker sees every metric point, the config (as hyper-parameters, once at start) and
the samples of every sample step. Each tracker is wrapped in :class:`GuardedTracker`: a tracker that
raises (disk full, server gone) is logged once and switched off for that job while training and our
own store go on untouched.

Where they write, without any key in the job config (job input is untrusted, so it never names a path
or a server; the operator does, through each tool's own environment variable):

- TensorBoard: ``RUN_DIR/tensorboard`` (``tensorboard --logdir <data dir>/runs`` shows every job).
- MLflow: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``RUN_DIR/mlflow.db`` with artifacts in
  ``RUN_DIR/mlflow-artifacts``; experiment ``MLFLOW_EXPERIMENT_NAME`` (default ``adrpo``), run name = job
  name. A resumed job continues the same MLflow run (its id is kept in ``RUN_DIR/mlflow_run_id``).
- Weights & Biases: project ``WANDB_PROJECT`` (default ``adrpo``), files under ``RUN_DIR/wandb``. Online when
  ``WANDB_API_KEY`` or ``WANDB_MODE`` says so, else offline (``wandb sync RUN_DIR/wandb/offline-run-*``
  uploads it later), so a server without credentials never blocks on a login. A resumed job continues the
  same W&B run (id in ``RUN_DIR/wandb_run_id``); W&B keeps the first value of a replayed step.
- Trackio: ``TRACKIO_DIR`` when set, else ``<data dir>/trackio`` (``trackio show --project adrpo`` with that
  ``TRACKIO_DIR``), project ``adrpo``, run name = job name. A resumed job continues its Trackio run and skips
  the steps it had already logged.

The tracker packages are optional extras (``pip install 'adrpo-studio[tensorboard,mlflow,wandb,trackio]'``), imported
only when a job asks for them; :func:`missing_tracker_package` lets config validation refuse a job whose
tracker is not installed.
"""

from __future__ import annotations

import importlib.util
import math
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .progress import IMAGE_SAMPLE, TEXT_SAMPLE, NullSink, Sample

TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlflow-artifacts"
MLFLOW_RUN_ID = "mlflow_run_id"
MLFLOW_PARAM_LIMIT = 6000  # MLflow refuses longer parameter values
MLFLOW_BATCH = 100  # MLflow's log_batch takes at most 100 params per call
WANDB_DIR = "wandb"
WANDB_RUN_ID = "wandb_run_id"
TRACKIO_PROJECT = "adrpo"
TRACKIO_DIR_ENV = "TRACKIO_DIR"
SAMPLE_COLUMNS = ["role", "prompt", "seed", "reward", "text"]


class JobConfig(Protocol):
    """What a tracker reads of ``config.JobConfig`` (which imports this module, so it is not imported here)."""

    name: str
    report_to: list[str]

    def to_yaml(self) -> str: ...

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TrackerInfo:
    name: str
    module: str  # imported to check it is installed
    extra: str  # the pyproject extra that installs it


TRACKERS: dict[str, TrackerInfo] = {
    "tensorboard": TrackerInfo("tensorboard", "tensorboard", "tensorboard"),
    "mlflow": TrackerInfo("mlflow", "mlflow", "mlflow"),
    "wandb": TrackerInfo("wandb", "wandb", "wandb"),
    "trackio": TrackerInfo("trackio", "trackio", "trackio"),
}


def missing_tracker_package(name: str) -> str | None:
    """Why tracker ``name`` cannot be used here (unknown or not installed), or None when it can."""
    info = TRACKERS.get(name)
    if info is None:
        return f"unknown tracker {name!r} (choose from {', '.join(TRACKERS)})"
    if importlib.util.find_spec(info.module) is None:
        return (
            f"tracker {name!r} needs the Python package {info.module!r}, which is not installed on this "
            f"server (pip install 'adrpo-studio[{info.extra}]')"
        )
    return None


def flat_hyperparameters(config: JobConfig) -> dict[str, str | float | int | bool]:
    """The config as dotted keys (``lora.rank``); lists and mappings as their text, None as ''."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:
            flat[prefix] = "" if value is None else str(value)

    walk("", config.model_dump(mode="json"))
    return flat


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and math.isfinite(float(value))
    }


def _sample_markdown(samples: list[Sample]) -> str:
    """One markdown table of a step's text samples (TensorBoard renders it; MLflow keeps it as a file)."""
    rows = ["| role | prompt | seed | reward | text |", "| --- | --- | --- | --- | --- |"]
    for sample in samples:
        cells = [
            sample.role,
            sample.prompt,
            str(sample.seed),
            "" if sample.reward is None else f"{sample.reward:.4f}",
            sample.text or "",
        ]
        rows.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(rows)


def _sample_rows(samples: list[Sample]) -> list[list[Any]]:
    """A step's text samples as table rows (SAMPLE_COLUMNS)."""
    return [[s.role, s.prompt, s.seed, s.reward, s.text or ""] for s in samples]


def _caption(sample: Sample) -> str:
    reward = "" if sample.reward is None else f" · reward {sample.reward:.3f}"
    return f"{sample.role} · {sample.prompt} · seed {sample.seed}{reward}"


def _image_samples(samples: list[Sample]) -> list[tuple[Sample, str]]:
    """The image samples with their file (relative to the run directory)."""
    return [(s, s.image_path) for s in samples if s.kind == IMAGE_SAMPLE and s.image_path]


def _media_of(
    samples: list[Sample], run_dir: Path, table: Callable[[list[list[Any]]], Any], image: Callable[..., Any]
) -> dict[str, Any]:
    """A step's samples as W&B-style media (wandb and trackio share the shape): one ``samples/text`` table
    of the text samples, one ``samples/<role>-NN-seedS`` image per image sample, captioned."""
    logged: dict[str, Any] = {}
    texts = [s for s in samples if s.kind == TEXT_SAMPLE]
    if texts:
        logged["samples/text"] = table(_sample_rows(texts))
    for index, (sample, image_path) in enumerate(_image_samples(samples)):
        logged[f"samples/{_image_name(index, sample)}"] = image(str(run_dir / image_path), caption=_caption(sample))
    return logged


def _image_name(index: int, sample: Sample) -> str:
    return f"{sample.role}-{index:02d}-seed{sample.seed}"


class TensorBoardTracker(NullSink):
    """Scalars per metric, the config as text and hparams, sample images and a table of sample texts."""

    def __init__(self, config: JobConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.writer: Any = None

    def on_start(self, total_steps: int, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        # purge_step drops events of steps after the checkpoint we resume from, as metrics.jsonl does.
        self.writer = SummaryWriter(
            str(self.run_dir / TENSORBOARD_DIR), purge_step=start_step + 1 if start_step else None
        )
        if start_step == 0:
            self.writer.add_text("config", "```yaml\n" + self.config.to_yaml() + "```", 0)
            # Written into the run's own directory (SummaryWriter.add_hparams would open a sub-run).
            for summary in hparams(flat_hyperparameters(self.config), {}):
                self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in _finite(metrics).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        import numpy as np
        from PIL import Image

        texts = [s for s in samples if s.kind == TEXT_SAMPLE]
        if texts:
            self.writer.add_text("samples", _sample_markdown(texts), step)
        for index, (sample, image_path) in enumerate(_image_samples(samples)):
            with Image.open(self.run_dir / image_path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(f"samples/{_image_name(index, sample)}", pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()


class MlflowTracker(NullSink):
    """Metrics per step, the config as params (and config.yaml), sample images and texts as artifacts."""

    def __init__(self, config: JobConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.client: Any = None
        self.run_id: str | None = None

    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(self.run_dir / MLFLOW_DB).resolve()}"

    def on_start(self, total_steps: int, start_step: int) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri())
        id_file = self.run_dir / MLFLOW_RUN_ID
        if start_step and id_file.is_file():
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        run = self.client.create_run(self._experiment_id(), run_name=self.config.name)
        self.run_id = str(run.info.run_id)
        id_file.write_text(self.run_id)
        self._log_params()
        self.client.log_text(self.run_id, self.config.to_yaml(), "config.yaml")

    def _experiment_id(self) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "adrpo"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        # A SQLite store would otherwise put artifacts in ./mlartifacts of whatever the working directory is.
        location = (
            None if os.environ.get("MLFLOW_TRACKING_URI") else (self.run_dir / MLFLOW_ARTIFACTS).resolve().as_uri()
        )
        return self.client.create_experiment(name, artifact_location=location)

    def _log_params(self) -> None:
        from mlflow.entities import Param

        params = [
            Param(key, str(value)[:MLFLOW_PARAM_LIMIT]) for key, value in flat_hyperparameters(self.config).items()
        ]
        for start in range(0, len(params), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + MLFLOW_BATCH])

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(key, value, now, step) for key, value in _finite(metrics).items()]
        for start in range(0, len(points), 1000):  # log_batch's metric limit
            self.client.log_batch(self.run_id, metrics=points[start : start + 1000])

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        folder = f"samples/step-{step:06d}"
        texts = [s for s in samples if s.kind == TEXT_SAMPLE]
        if texts:
            self.client.log_text(self.run_id, _sample_markdown(texts), f"{folder}/samples.md")
        for index, (sample, image_path) in enumerate(_image_samples(samples)):
            source = self.run_dir / image_path
            self.client.log_artifact(self.run_id, str(source), f"{folder}/{_image_name(index, sample)}")

    def close(self, status: str) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(
                self.run_id, status={"succeeded": "FINISHED", "cancelled": "KILLED"}.get(status, "FAILED")
            )


class WandbTracker(NullSink):
    """A W&B run: metrics per step, the config, sample images and a table of sample texts per sample step."""

    def __init__(self, config: JobConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.run: Any = None

    @staticmethod
    def mode() -> str | None:
        """None lets W&B read its own settings; without any, offline (no login prompt on a server)."""
        configured = os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")
        return None if configured else "offline"

    def on_start(self, total_steps: int, start_step: int) -> None:
        import wandb

        id_file = self.run_dir / WANDB_RUN_ID
        resuming = bool(start_step) and id_file.is_file()
        run_id = id_file.read_text().strip() if resuming else uuid.uuid4().hex[:12]  # W&B ids: [a-z0-9]
        id_file.write_text(run_id)
        (self.run_dir / WANDB_DIR).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "adrpo",
            name=self.config.name,
            id=run_id,
            dir=str(self.run_dir),
            config=flat_hyperparameters(self.config),
            resume="allow",
            mode=self.mode(),  # pyright: ignore[reportArgumentType] (None = W&B's own settings)
            reinit="create_new",  # several jobs may run in one worker process, one after another
            settings=wandb.Settings(console="off", silent=True),
        )

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(_finite(metrics), step=step)

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        import pandas  # a dependency of datasets; wandb.Table's list arguments are typed too narrowly
        import wandb

        def table(rows: list[list[Any]]) -> Any:
            return wandb.Table(dataframe=pandas.DataFrame(rows, columns=pandas.Index(SAMPLE_COLUMNS)))

        logged = _media_of(samples, self.run_dir, table, wandb.Image)
        if logged:
            self.run.log(logged, step=step)

    def close(self, status: str) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "succeeded" else 1)


class TrackioTracker(NullSink):
    """A Trackio run: metrics per step, the config, sample images and a table of sample texts."""

    def __init__(self, config: JobConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.run: Any = None
        self.logged_through = 0  # steps already in the run (a resumed job does not log them twice)

    def on_start(self, total_steps: int, start_step: int) -> None:
        from .paths import data_dir

        # Trackio reads its directory once, at import: point it at the data directory unless the operator did.
        os.environ.setdefault(TRACKIO_DIR_ENV, str(data_dir() / "trackio"))
        import trackio
        from trackio.sqlite_storage import SQLiteStorage

        resuming = bool(start_step) and self.config.name in SQLiteStorage.get_runs(TRACKIO_PROJECT)
        self.run = trackio.init(
            project=TRACKIO_PROJECT,
            name=self.config.name,
            config=flat_hyperparameters(self.config),
            resume="must" if resuming else "never",
            embed=False,
            auto_log_cpu=False,
            auto_log_gpu=False,
        )
        if resuming:
            self.logged_through = SQLiteStorage.get_max_step_for_run(TRACKIO_PROJECT, self.config.name) or 0

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step > self.logged_through:
            self.run.log(_finite(metrics), step=step)

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        import trackio

        if self.logged_through and step <= self.logged_through:
            return
        logged = _media_of(
            samples, self.run_dir, lambda rows: trackio.Table(columns=SAMPLE_COLUMNS, data=rows), trackio.Image
        )
        if logged:
            self.run.log(logged, step=step)

    def close(self, status: str) -> None:
        if self.run is not None:
            self.run.finish()


TRACKER_CLASSES: dict[str, Callable[[JobConfig, Path], Any]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
    "wandb": WandbTracker,
    "trackio": TrackioTracker,
}


class GuardedTracker(NullSink):
    """Runs one tracker; its first exception is logged and the tracker is switched off for the job."""

    def __init__(self, name: str, tracker: Any, log: Callable[[str], None]) -> None:
        self.name = name
        self.tracker = tracker
        self.log = log
        self.failed = False

    def _call(self, event: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.tracker, event)(*args)
        except Exception as error:  # noqa: BLE001 - any tracker fault must not end the run
            self.failed = True
            self.log(
                f"tracker {self.name} failed in {event} ({type(error).__name__}: {error}); "
                "switched off for this job, training goes on"
            )

    def on_start(self, total_steps: int, start_step: int) -> None:
        self._call("on_start", total_steps, start_step)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self._call("on_step", step, metrics)

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        self._call("on_samples", step, samples)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._call("on_checkpoint", step, path)

    def close(self, status: str) -> None:
        if hasattr(self.tracker, "close"):
            self._call("close", status)


def build_trackers(config: JobConfig, run_dir: Path, log: Callable[[str], None]) -> list[GuardedTracker]:
    """One guarded sink per ``config.report_to`` entry, in order."""
    return [GuardedTracker(name, TRACKER_CLASSES[name](config, Path(run_dir)), log) for name in config.report_to]
