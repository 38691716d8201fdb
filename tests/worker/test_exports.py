"""The job page's downloads beside the adapter zip: an SD3 job's LoRA in ComfyUI's layout, built from a
real checkpoint by a real training task, served by the API; other kinds are told they have none."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from worker.service import InvalidState
from worker.tasks import train_job

from .conftest import tiny_digits

SD3_JOB = {
    "kind": "flow",
    "name": "tiny-sd3-export",
    "model": {"name_or_path": "builtin:tiny-sd3"},
    "rewards": [{"name": "clip_score", "options": {"model": "builtin:tiny-clip"}}],
    "prompts": {"texts": ["a red cat", "a blue dog"]},
    "steps": 2,
    "group_size": 2,
    "prompts_per_step": 2,
    "sample_every": 100,
    "checkpoint_every": 1,
    "lora": {"rank": 4, "alpha": 8},
    "flow": {"sample_steps": 3},
}


def test_an_sd3_job_offers_its_lora_for_comfyui_and_a_digits_job_does_not(service, worker_context):
    from app.server import create_app

    sd3 = service.submit(SD3_JOB)
    assert train_job(worker_context, sd3.id) == "succeeded"
    checkpoints = service.list_checkpoints(sd3.id)
    assert [c.step for c in checkpoints] == [1, 2] and all(c.comfyui for c in checkpoints)
    path = service.comfyui_lora(sd3.id, step=1)
    assert path.name == f"tiny-sd3-export-{sd3.id[:8]}-step-000001-comfyui.safetensors"
    state = load_file(str(path))
    assert state and all(key.startswith("lora_transformer_") for key in state)
    assert {key.rsplit(".", 2)[-2] for key in state if key.endswith(".weight")} == {"lora_down", "lora_up"}
    assert service.comfyui_lora(sd3.id, step=1) == path  # built once

    digits = service.submit(preset="digits-even", overrides=tiny_digits())
    assert train_job(worker_context, digits.id) == "succeeded"
    assert not any(c.comfyui for c in service.list_checkpoints(digits.id))
    with pytest.raises(InvalidState, match="no SD3 LoRA"):
        service.comfyui_lora(digits.id)

    with TestClient(create_app(service.settings, service=service, studio=False)) as client:
        served = client.get(f"/api/jobs/{sd3.id}/comfyui-lora.safetensors", params={"step": 2})
        assert (
            served.status_code == 200
            and served.content[:8]
            and "comfyui.safetensors" in served.headers["content-disposition"]
        )
        refused = client.get(f"/api/jobs/{digits.id}/comfyui-lora.safetensors")
        assert refused.status_code == 409 and "no SD3 LoRA" in refused.json()["detail"]
        assert client.get(f"/api/jobs/{sd3.id}/comfyui-lora.safetensors", params={"step": 7}).status_code == 404


def test_an_llm_job_is_merged_by_a_worker_and_served_as_one_transformers_folder(service, worker_context, monkeypatch):
    import zipfile

    from transformers import AutoModelForCausalLM

    from app.server import create_app
    from app.ui.share import merge_display
    from worker.celery_app import EXPORT_MERGED
    from worker.tasks import merge_checkpoint

    job = service.submit(preset="tiny-lm", overrides={"name": "merge-demo", "steps": 2, "prompts_per_step": 2})
    assert train_job(worker_context, job.id) == "succeeded"
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(service.celery, "send_task", lambda name, args: sent.append((name, args)))
    step = service.list_checkpoints(job.id)[-1].step
    assert service.merged_model(job.id).status == "absent" and not sent

    shown = merge_display(service, job.id, "newest", build=True)
    assert shown.polling and shown.path is None and "merging step" in shown.text
    assert sent == [(EXPORT_MERGED, [job.id, step])]
    assert service.merged_model(job.id, build=True).status == "building" and len(sent) == 1  # not sent twice
    with pytest.raises(InvalidState, match="is building, not ready"):
        service.merged_model_zip(job.id)

    assert merge_checkpoint(worker_context, job.id, step) == "ready"
    shown = merge_display(service, job.id, step, build=False)
    assert not shown.polling and shown.path is not None
    stem = f"merge-demo-{job.id[:8]}-step-{step:06d}-merged"
    with zipfile.ZipFile(shown.path) as archive:
        names = set(archive.namelist())
        assert {f"{stem}/config.json", f"{stem}/model.safetensors", f"{stem}/adrpo_job.yaml"} <= names
        assert all(name.startswith(f"{stem}/") for name in names)
        archive.extractall(service.settings.data_dir / "unpacked")
    merged = AutoModelForCausalLM.from_pretrained(service.settings.data_dir / "unpacked" / stem)
    assert not hasattr(merged, "peft_config")  # a plain transformers model

    digits = service.submit(preset="digits-even", overrides=tiny_digits())
    with TestClient(create_app(service.settings, service=service, studio=False)) as client:
        served = client.get(f"/api/jobs/{job.id}/merged-model.zip")
        assert served.status_code == 200 and f"{stem}.zip" in served.headers["content-disposition"]
        assert client.get(f"/api/jobs/{job.id}/merged-model").json()["status"] == "ready"
        refused = client.post(f"/api/jobs/{digits.id}/merged-model")
        assert refused.status_code == 409 and "a merged model is for LLM jobs" in refused.json()["detail"]
        assert client.post(f"/api/jobs/{job.id}/merged-model", params={"step": 999}).status_code == 404
        assert client.post(f"/api/jobs/{job.id}/merged-model", params={"step": -1}).status_code == 422


def test_a_merge_that_fails_says_why_on_the_page_and_can_be_asked_again(service, worker_context, monkeypatch):
    from app.ui.share import merge_display
    from worker.tasks import merge_checkpoint

    job = service.submit(preset="tiny-lm", overrides={"name": "merge-bad", "steps": 1, "prompts_per_step": 2})
    assert train_job(worker_context, job.id) == "succeeded"
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(service.celery, "send_task", lambda name, args: sent.append((name, args)))
    checkpoint = service.list_checkpoints(job.id)[-1]
    assert merge_display(service, job.id, "newest", build=True).polling
    weights = next(path for path in Path(checkpoint.path).iterdir() if path.suffix == ".safetensors")
    weights.write_bytes(weights.read_bytes()[:-8] + b"damaged!")  # the disk changed it after the save

    assert merge_checkpoint(worker_context, job.id, checkpoint.step) == "failed"
    shown = merge_display(service, job.id, "newest", build=False)
    assert shown.text.startswith(f"**The merge of step {checkpoint.step} failed:** CorruptCheckpoint: ")
    assert "sha256" in shown.text and not shown.polling and shown.path is None
    assert merge_display(service, job.id, "newest", build=True).polling and len(sent) == 2  # asked again
