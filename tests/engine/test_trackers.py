"""Experiment trackers (report_to): real TensorBoard and MLflow stores written by tiny digits runs and read back."""

from __future__ import annotations

import pytest

from adrpo_engine import metrics as M
from adrpo_engine import trackers as T
from adrpo_engine.config import ConfigError
from adrpo_engine.presets import preset_config
from adrpo_engine.progress import NullSink, RecordingSink, Sample, read_metrics_jsonl
from adrpo_engine.runner import train

STEPS = 3


def digits_config(**overrides):
    base = {
        "steps": STEPS,
        "group_size": 4,
        "prompts_per_step": 2,
        "sample_every": 2,
        "checkpoint_every": 100,
        "flow.sample_steps": 4,
    }
    return preset_config("digits-even", {**base, **overrides})


def test_unknown_or_uninstalled_tracker_is_refused_at_validation(monkeypatch):
    with pytest.raises(
        ConfigError, match=r"report_to: unknown tracker 'comet' \(choose from tensorboard, mlflow, wandb, trackio\)"
    ):
        digits_config(report_to=["comet"])
    # A tracker whose package cannot be imported here (find_spec really looks it up).
    monkeypatch.setitem(T.TRACKERS, "mlflow", T.TrackerInfo("mlflow", "adrpo_no_such_module", "mlflow"))
    with pytest.raises(ConfigError, match=r"report_to: tracker 'mlflow' needs .*not installed.*adrpo-studio\[mlflow\]"):
        digits_config(report_to=["mlflow"])
    with pytest.raises(ConfigError, match="at most once"):
        digits_config(report_to=["tensorboard", "tensorboard"])
    assert digits_config().report_to == []


class FailingTracker(NullSink):
    """Works for the first step, then fails as a full disk would; records every call it gets."""

    def __init__(self, config, run_dir) -> None:
        self.calls: list[tuple[str, int]] = []
        FailingTracker.last = self

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.calls.append(("step", step))
        if step == 2:
            raise OSError(28, "No space left on device")

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        self.calls.append(("samples", step))

    def close(self, status: str) -> None:
        self.calls.append(("close", 0))


def test_failing_tracker_is_logged_and_switched_off_while_training_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(T.TRACKER_CLASSES, "tensorboard", FailingTracker)
    sink = RecordingSink()
    result = train(digits_config(report_to=["tensorboard"]), tmp_path, sink)
    assert result.status == "succeeded" and result.last_step == STEPS
    assert sorted(sink.steps) == list(range(1, STEPS + 1))
    assert [row["step"] for row in read_metrics_jsonl(tmp_path / "metrics.jsonl")] == list(range(1, STEPS + 1))
    failures = [line for line in sink.logs if "tracker tensorboard failed" in line]
    assert len(failures) == 1 and "No space left on device" in failures[0] and "switched off" in failures[0]
    # Nothing reaches the tracker after its failure (not the step-2 samples, not step 3, not close).
    assert FailingTracker.last.calls == [("samples", 0), ("step", 1), ("step", 2)]


def test_tensorboard_gets_every_step_the_config_and_the_sample_images(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = RecordingSink()
    train(digits_config(report_to=["tensorboard"]), tmp_path, sink)
    events = EventAccumulator(
        str(tmp_path / T.TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0, "tensors": 0}
    )
    events.Reload()
    tags = events.Tags()
    assert M.REWARD_MEAN in sink.steps[1]
    for name in sink.steps[1]:  # every metric of every step
        points = events.Scalars(name)
        assert [p.step for p in points] == list(range(1, STEPS + 1))
        assert [p.value for p in points] == pytest.approx([sink.steps[s][name] for s in range(1, STEPS + 1)], rel=1e-5)
    image_steps = sorted(event.step for tag in tags["images"] for event in events.Images(tag))
    # One image per sample: the reference at step 0, then sample_every=2 and the last step.
    assert image_steps == sorted(sample.step for sample in sink.samples) and set(image_steps) == {0, 2, 3}
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "digits-even" in config_text and "report_to" in config_text
    hparams = events.PluginTagToContent("hparams")
    assert hparams, "the config was not written as hyper-parameters"
    assert any(b"beta0" in content for content in hparams.values())


def test_tensorboard_logs_text_samples_as_a_table(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = T.TensorBoardTracker(digits_config(), tmp_path)
    tracker.on_start(10, 0)
    tracker.on_samples(5, [Sample(step=5, prompt="2+2=", seed=1, kind="text", text="4 | four", reward=1.0)])
    tracker.close("succeeded")
    events = EventAccumulator(str(tmp_path / T.TENSORBOARD_DIR))
    events.Reload()
    (entry,) = events.Tensors("samples/text_summary")
    table = entry.tensor_proto.string_val[0].decode()
    assert entry.step == 5 and "2+2=" in table and "4 \\| four" in table and "1.0000" in table


def test_mlflow_gets_every_step_the_config_and_the_sample_images(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    sink = RecordingSink()
    train(digits_config(report_to=["mlflow"]), tmp_path, sink)
    assert not [line for line in sink.logs if "tracker" in line]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / T.MLFLOW_DB}")
    run = client.get_run((tmp_path / T.MLFLOW_RUN_ID).read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == "digits-even"
    for name in (M.REWARD_MEAN, M.LOSS):
        history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, STEPS + 1))
        assert [m.value for m in history] == pytest.approx([sink.steps[s][name] for s in range(1, STEPS + 1)])
    assert run.data.params["beta0"] == str(digits_config().beta0) and run.data.params["kind"] == "flow"
    assert run.data.params["report_to"] == "['mlflow']"
    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "samples"} <= top
    steps = {f.path for f in client.list_artifacts(run.info.run_id, "samples")}
    assert steps == {"samples/step-000000", "samples/step-000002", "samples/step-000003"}
    images = client.list_artifacts(run.info.run_id, "samples/step-000002")
    assert len(images) == len([s for s in sink.samples if s.step == 2])
    assert str(tmp_path / T.MLFLOW_ARTIFACTS) in run.info.artifact_uri


def test_resumed_run_continues_its_tracker_runs(tmp_path, monkeypatch):
    """A crash after step 3, before its checkpoint: the resumed job replays step 3 into the same stores."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    import shutil

    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = digits_config(report_to=["tensorboard", "mlflow"], checkpoint_every=2, sample_every=100)
    train(config, tmp_path, RecordingSink())
    run_id = (tmp_path / T.MLFLOW_RUN_ID).read_text()
    shutil.rmtree(tmp_path / "checkpoints" / "step-000003")
    sink = RecordingSink()
    result = train(config, tmp_path, sink)
    assert result.status == "succeeded" and sorted(sink.steps) == [3]
    events = EventAccumulator(str(tmp_path / T.TENSORBOARD_DIR), size_guidance={"scalars": 0})
    events.Reload()
    points = events.Scalars(M.REWARD_MEAN)
    assert [p.step for p in points] == [1, 2, 3]  # the first step 3 was purged, not duplicated
    assert points[-1].value == pytest.approx(sink.steps[3][M.REWARD_MEAN], rel=1e-5)
    assert (tmp_path / T.MLFLOW_RUN_ID).read_text() == run_id
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / T.MLFLOW_DB}")
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    # MLflow cannot delete points: the replayed step 3 is logged again, with the same (replayed) value.
    history = client.get_metric_history(run_id, M.REWARD_MEAN)
    assert {m.step for m in history} == {1, 2, 3}
    replayed = [m.value for m in history if m.step == 3]
    assert replayed == pytest.approx([sink.steps[3][M.REWARD_MEAN]] * 2)


def test_wandb_offline_run_gets_every_step_the_config_and_the_samples(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from tests.wandb_offline import offline_runs, read_run

    for variable in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    sink = RecordingSink()
    config = digits_config(report_to=["wandb"], checkpoint_every=2)
    train(config, tmp_path, sink)
    assert not [line for line in sink.logs if "tracker" in line]
    (log_file,) = offline_runs(tmp_path)  # no credentials: offline, never a login prompt
    run = read_run(log_file)
    assert run["id"] == (tmp_path / T.WANDB_RUN_ID).read_text() and run["project"] == "adrpo"
    assert run["name"] == "digits-even" and run["exit_code"] == 0
    assert run["config"]["beta0"] == digits_config().beta0 and run["config"]["kind"] == "flow"
    metric_rows = {row["_step"]: row for row in run["history"] if M.REWARD_MEAN in row}
    assert sorted(metric_rows) == list(range(1, STEPS + 1))
    for step, row in metric_rows.items():
        assert row[M.REWARD_MEAN] == pytest.approx(sink.steps[step][M.REWARD_MEAN])
        assert row[M.LOSS] == pytest.approx(sink.steps[step][M.LOSS])
    image_steps = sorted(
        row["_step"] for row in run["history"] for key in row if key.endswith("/_type") and row[key] == "image-file"
    )
    assert image_steps == sorted(sample.step for sample in sink.samples)

    # A crash after step 3, before its checkpoint: the resumed job logs into the same W&B run (id).
    import shutil

    shutil.rmtree(tmp_path / "checkpoints" / "step-000003")
    train(config, tmp_path, RecordingSink())
    runs = [read_run(path) for path in offline_runs(tmp_path)]
    assert len(runs) == 2 and {r["id"] for r in runs} == {run["id"]}


def test_wandb_tracker_logs_text_samples_as_a_table(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from tests.wandb_offline import offline_runs, read_run

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    tracker = T.WandbTracker(digits_config(), tmp_path)
    tracker.on_start(10, 0)
    tracker.on_samples(5, [Sample(step=5, prompt="2+2=", seed=1, kind="text", text="4", reward=1.0)])
    tracker.close("cancelled")
    run = read_run(offline_runs(tmp_path)[0])
    (row,) = [row for row in run["history"] if "samples/text/_type" in row]
    assert row["_step"] == 5 and row["samples/text/_type"] == "table-file" and row["samples/text/nrows"] == 1
    table = next(tmp_path.glob("wandb/offline-run-*/files/media/table/samples/text_*.table.json"))
    import json

    assert json.loads(table.read_text())["data"] == [["policy", "2+2=", 1, 1.0, "4"]]  # Sample.role defaults to policy
    assert run["exit_code"] == 1  # not succeeded


def test_trackio_gets_every_step_the_config_and_the_samples_and_a_resume_does_not_log_twice(tmp_path, monkeypatch):
    import shutil
    import uuid

    # Trackio reads TRACKIO_DIR once, at its first import in the process (so before importorskip imports it).
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    pytest.importorskip("trackio")
    from trackio.sqlite_storage import SQLiteStorage

    name = f"digits-trackio-{uuid.uuid4().hex[:8]}"  # unique even if trackio was imported earlier elsewhere
    config = digits_config(report_to=["trackio"], name=name, checkpoint_every=2)
    sink = RecordingSink()
    train(config, tmp_path / "run", sink)
    assert not [line for line in sink.logs if "tracker" in line]
    logs = SQLiteStorage.get_logs(T.TRACKIO_PROJECT, name)
    metric_rows = {row["step"]: row for row in logs if M.REWARD_MEAN in row}
    assert sorted(metric_rows) == list(range(1, STEPS + 1))
    assert [metric_rows[s][M.REWARD_MEAN] for s in range(1, STEPS + 1)] == pytest.approx(
        [sink.steps[s][M.REWARD_MEAN] for s in range(1, STEPS + 1)]
    )
    image_steps = sorted(row["step"] for row in logs for key in row if key.startswith("samples/"))
    assert image_steps == sorted(sample.step for sample in sink.samples)
    assert SQLiteStorage.get_run_config(T.TRACKIO_PROJECT, name)["beta0"] == config.beta0

    # A crash after step 3, before its checkpoint: the resumed job continues the run and logs no step twice.
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-000003")
    train(config, tmp_path / "run", RecordingSink())
    assert SQLiteStorage.get_runs(T.TRACKIO_PROJECT).count(name) == 1
    steps = [row["step"] for row in SQLiteStorage.get_logs(T.TRACKIO_PROJECT, name) if M.REWARD_MEAN in row]
    assert steps == list(range(1, STEPS + 1))
