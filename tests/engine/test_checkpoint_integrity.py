"""Issue 9 item 8: a damaged checkpoint no longer fails a job for good. Resume verifies the recorded
sha256 digests, falls back to the newest good checkpoint (saying so in the log), and reads trainer state
without unpickling code."""

from __future__ import annotations

import os

import pytest
import torch

from adrpo_engine.integrity import MANIFEST, verify_checkpoint, write_manifest
from adrpo_engine.presets import preset_config
from adrpo_engine.progress import RecordingSink
from adrpo_engine.runner import train
from adrpo_engine.trainers.base import TRAINER_STATE, TrainingError, checkpoint_dir


def digits_config(steps: int):
    return preset_config(
        "digits-even",
        {
            "steps": steps,
            "group_size": 4,
            "prompts_per_step": 2,
            "sample_every": 100,
            "checkpoint_every": 2,
            "flow.sample_steps": 2,
        },
    )


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    train(digits_config(6), run, RecordingSink())
    return run


def test_a_checkpoint_records_the_digests_of_its_files(run_dir):
    folder = checkpoint_dir(run_dir, 6)
    assert (folder / MANIFEST).is_file() and verify_checkpoint(folder) is None
    truncate(folder / "adapter_model.safetensors")
    assert "adapter_model.safetensors" in verify_checkpoint(folder)


@pytest.mark.parametrize("damaged", ["adapter_model.safetensors", TRAINER_STATE])
def test_resume_falls_back_to_the_newest_good_checkpoint_and_says_so(run_dir, damaged):
    truncate(checkpoint_dir(run_dir, 6) / damaged)
    sink = RecordingSink()
    result = train(digits_config(8), run_dir, sink)
    assert result.status == "succeeded" and min(sink.steps) == 5  # resumed from step 4
    assert any("checkpoint step 6 is unusable" in line and damaged in line for line in sink.logs), sink.logs
    assert (run_dir / "checkpoints" / "corrupt-step-000006").is_dir()
    assert verify_checkpoint(checkpoint_dir(run_dir, 6)) is None  # step 6 written again, whole


def test_an_old_checkpoint_without_digests_that_fails_to_load_is_skipped(run_dir):
    folder = checkpoint_dir(run_dir, 6)
    (folder / MANIFEST).unlink()  # as written before digests existed
    truncate(folder / "adapter_model.safetensors")
    sink = RecordingSink()
    assert train(digits_config(8), run_dir, sink).status == "succeeded"
    assert min(sink.steps) == 5 and any("step 6 is unusable" in line for line in sink.logs)


class _Planted:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['ADRPO_PLANTED_MARKER']}",))


def test_trainer_state_is_read_without_running_pickled_code(run_dir, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("ADRPO_PLANTED_MARKER", str(marker))
    for step in (2, 4, 6):  # every checkpoint planted, digests rewritten to match (a writer with disk access)
        folder = checkpoint_dir(run_dir, step)
        state = torch.load(folder / TRAINER_STATE, weights_only=True)
        state["extra"] = {"payload": _Planted()}
        torch.save(state, folder / TRAINER_STATE)
        write_manifest(folder)
    with pytest.raises(TrainingError, match="no usable checkpoint"):
        train(digits_config(8), run_dir, RecordingSink())
    assert not marker.exists()
    assert not (run_dir / "checkpoints" / "step-000006").exists()  # moved aside: a resume starts from 0
