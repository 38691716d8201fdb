"""A job on two processes (resources.processes = 2) run by the worker: gloo ranks on this CPU machine, launched
with `accelerate launch` as a process group the worker owns (worker/group.py)."""

from __future__ import annotations

import os
import threading
import time

import yaml
from safetensors.torch import load_file

from adrpo_engine import metrics as M
from adrpo_engine.config import validate_config
from adrpo_engine.runner import train
from tests.worker.conftest import tiny_digits
from worker.group import GROUP_LOG, pid_path
from worker.tasks import train_job


def steps_of(service, job_id):
    return [step for step, _ in service.get_metrics(job_id)[M.REWARD_MEAN]]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def rank_pids(settings, job_id, processes=2):
    return [int(pid_path(settings.run_dir(job_id), rank).read_text()) for rank in range(processes)]


def test_a_two_process_job_succeeds_with_every_step_once_and_leaves_no_process(service, worker_context, settings):
    job = service.submit(preset="digits-even", overrides=tiny_digits(**{"resources.processes": 2, "steps": 4}))
    assert train_job(worker_context, job.id) == "succeeded", (settings.run_dir(job.id) / GROUP_LOG).read_text()[-3000:]
    assert service.get_job(job.id).status == "succeeded"
    assert steps_of(service, job.id) == [1, 2, 3, 4]
    log = (settings.run_dir(job.id) / "job.log").read_text()
    assert "data parallel on 2 processes" in log
    assert not any(alive(pid) for pid in rank_pids(settings, job.id))


def test_a_killed_rank_requeues_the_job_which_resumes_without_lost_or_duplicated_points(
    service, worker_context, settings, tmp_path
):
    marker = tmp_path / "rank-1-killed"
    rewards = [
        {"name": "digits:even"},
        {"name": "tests.worker.rank_faults:kill_rank_one", "weight": 0.0, "options": {"marker": str(marker)}},
    ]
    overrides = tiny_digits(**{"resources.processes": 2, "steps": 6, "checkpoint_every": 2, "rewards": rewards})
    job = service.submit(preset="digits-even", overrides=overrides)
    assert train_job(worker_context, job.id) == "released"  # rank 1 died at step 3: the job went back to the queue
    assert marker.exists()
    assert not any(alive(pid) for pid in rank_pids(settings, job.id))  # rank 0 and the launcher went with it
    queued = service.get_job(job.id)
    assert queued.status == "queued" and queued.current_step == 2
    assert "died without a word" in service.log_tail(job.id)

    assert train_job(worker_context, job.id) == "succeeded"  # the next claim resumes from step 2
    assert steps_of(service, job.id) == [1, 2, 3, 4, 5, 6]
    assert all(steps == list(range(1, 7)) for steps in _metric_steps(service, job.id).values())
    assert "from step 2" in service.log_tail(job.id)
    assert service.get_job(job.id).attempts == 2
    # Resumed on 2 processes, it continues exactly: the adapter of one uninterrupted process on the same batch.
    run_dir = settings.run_dir(job.id)
    straight = validate_config({**yaml.safe_load((run_dir / "config.yaml").read_text()), "resources": {"processes": 1}})
    train(straight, tmp_path / "straight", resume=False)
    resumed = load_file(str(run_dir / "checkpoints" / "step-000006" / "adapter_model.safetensors"))
    uninterrupted = load_file(str(tmp_path / "straight" / "checkpoints" / "step-000006" / "adapter_model.safetensors"))
    assert max(float((resumed[k] - uninterrupted[k]).abs().max()) for k in resumed) <= 1e-5


def _metric_steps(service, job_id):
    return {name: [step for step, _ in points] for name, points in service.get_metrics(job_id).items()}


def test_a_cancel_stops_every_rank_after_the_step_with_a_checkpoint(service, worker_context, settings, monkeypatch):
    from worker import tasks
    from worker.lifecycle import claim_job

    job = service.submit(preset="digits-even", overrides=tiny_digits(**{"resources.processes": 2, "steps": 6}))

    def claim_then_cancel(store, job_id, *args, **kwargs):
        claimed = claim_job(store, job_id, *args, **kwargs)
        service.cancel(job_id)
        return claimed

    monkeypatch.setattr(tasks, "claim_job", claim_then_cancel)
    assert train_job(worker_context, job.id) == "cancelled"
    cancelled = service.get_job(job.id)
    assert cancelled.status == "cancelled" and cancelled.current_step == 1
    assert [c.step for c in service.list_checkpoints(job.id)] == [1]
    assert not any(alive(pid) for pid in rank_pids(settings, job.id))


def test_a_worker_shutdown_sigterms_the_group_which_checkpoints_and_is_requeued(service, worker_context, settings):
    job = service.submit(
        preset="digits-even",
        overrides=tiny_digits(**{"resources.processes": 2, "steps": 100000, "checkpoint_every": 1000}),
    )

    def shut_down_once_training():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and service.get_job(job.id).current_step < 2:
            time.sleep(0.2)
        worker_context.shutting_down.set()

    watcher = threading.Thread(target=shut_down_once_training, daemon=True)
    watcher.start()
    assert train_job(worker_context, job.id) == "released"
    watcher.join()
    stopped = service.get_job(job.id)
    assert stopped.status == "queued"
    # the ranks agreed on the step to stop after, and rank 0 checkpointed it
    assert [c.step for c in service.list_checkpoints(job.id)] == [stopped.current_step]
    assert "SIGTERM to the group" in service.log_tail(job.id)
    assert not any(alive(pid) for pid in rank_pids(settings, job.id))


def test_a_job_asking_for_more_gpus_than_the_worker_owns_is_refused_with_the_field(settings, monkeypatch):
    import pytest

    from adrpo_engine.config import ConfigError
    from adrpo_engine.presets import preset_config
    from worker import group

    config = preset_config("digits-even", {"resources.processes": 2})
    assert group.gpus_for(config, settings) is None  # no CUDA here: gloo processes on the CPU
    monkeypatch.setattr(group, "uses_cuda", lambda config: True)
    one_gpu = settings.model_copy(update={"worker_gpus": "3"})
    with pytest.raises(ConfigError, match=r"resources.processes: the job asks for 2 processes .* owns 1 GPU\(s\) \(3;"):
        group.gpus_for(config, one_gpu)
    assert group.gpus_for(config, settings.model_copy(update={"worker_gpus": "0, 2,5"})) == ["0", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert settings.model_copy(update={"worker_gpus": ""}).owned_gpus() == ["4", "6"]


def test_the_launch_line_names_the_processes_the_gpus_and_the_accelerate_config():
    from adrpo_engine.launch import accelerate_command

    command = accelerate_command(4, "worker.rank", ["JOB", "OWNER"], gpu_ids=["0", "2"], port=29999)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    text = " ".join(command)
    assert "--num_processes 4" in text and "--multi_gpu" in text and "--gpu_ids 0,2" in text
    assert "--main_process_port 29999" in text and text.endswith("-m worker.rank JOB OWNER")
    with_file = " ".join(accelerate_command(2, "m", [], accelerate_config="/cfg.yaml"))
    assert "--config_file /cfg.yaml" in with_file and "--mixed_precision" not in with_file


def test_an_api_job_names_an_accelerate_config_only_under_the_uploads_root(settings, tmp_path):
    import pytest
    import yaml as yaml_module

    from adrpo_engine.presets import preset_config
    from worker.policy import Policy, check_policy
    from worker.validation import SubmissionError

    outside = tmp_path / "accelerate.yaml"
    outside.write_text(yaml_module.safe_dump({"distributed_type": "MULTI_GPU"}))
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    inside = settings.uploads_dir / "accelerate.yaml"
    inside.write_text(outside.read_text())
    policy = Policy.of(settings)
    job = preset_config("digits-even", {"resources.processes": 2, "resources.accelerate_config": str(outside)})
    with pytest.raises(SubmissionError, match="resources.accelerate_config: local paths of jobs submitted over"):
        check_policy(job, policy)
    check_policy(preset_config("digits-even", {"resources.accelerate_config": str(inside)}), policy)
