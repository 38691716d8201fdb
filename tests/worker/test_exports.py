"""The job page's downloads beside the adapter zip: an SD3 job's LoRA in ComfyUI's layout, built from a
real checkpoint by a real training task, served by the API; other kinds are told they have none."""

from __future__ import annotations

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
