"""Audio jobs through the service: uploaded clips travel with the job and are checked at submission."""

import io

import numpy as np
import pytest
from scipy.io import wavfile

from worker.validation import SubmissionError

QUESTION = "How many beeps do you hear? (A) 1 (B) 2 (C) 3 (D) 4"


def wav(seconds=1.0, rate=16_000):
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    wavfile.write(buffer, rate, (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16))
    return buffer.getvalue()


def rows(*names):
    return [{"prompt": QUESTION, "audio": name, "answer": "2"} for name in names]


def submit(service, uploads, row_list, **extra):
    overrides = {"prompts.dataset": None, "prompts.rows": row_list, "audio.max_seconds": 2.0, **extra}
    return service.submit(preset="audio-tones", overrides=overrides, uploads=uploads)


def test_uploaded_clips_are_stored_with_the_job_and_its_rows_point_at_them(service, settings):
    job = submit(service, {"a.wav": wav(), "b.wav": wav(0.5, 44_100)}, rows("a.wav", "b.wav"))
    folder = settings.uploads_dir / "jobs" / job.id
    assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "b.wav"]
    stored = [row["audio"] for row in job.config["prompts"]["rows"]]
    assert stored == [str(folder / "a.wav"), str(folder / "b.wav")]


@pytest.mark.parametrize(
    ("uploads", "row_list", "field", "message"),
    [
        ({"a.wav": wav(3.0)}, rows("a.wav"), "prompts.rows.0.audio", "is 3.0 s long; the limit is 2 s"),
        ({"a.wav": wav(0.5, rate=500)}, rows("a.wav"), "prompts.rows.0.audio", "sample rate 500 Hz"),
        ({"a.wav": b"RIFF....WAVEjunk"}, rows("a.wav"), "prompts.rows.0.audio", "not a readable WAV"),
        ({"notes.txt": b"hello"}, rows("notes.txt"), "uploads.notes.txt", "not an audio file"),
        ({"a.wav": wav()}, rows("a.wav", "missing.wav"), "prompts.rows.1.audio", "is not among the uploaded files"),
        ({"../a.wav": wav()}, rows("a.wav"), "uploads", "bad file name"),
    ],
)
def test_bad_clips_are_refused_naming_the_field_and_leave_nothing(service, settings, uploads, row_list, field, message):
    with pytest.raises(SubmissionError, match=message) as caught:
        submit(service, uploads, row_list)
    assert caught.value.field == field
    jobs = settings.uploads_dir / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())
    assert service.list_jobs() == []


def test_a_row_may_not_point_outside_the_uploads_root(service, tmp_path):
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(wav())
    with pytest.raises(SubmissionError, match="must lie under") as caught:
        service.submit(preset="audio-tones", overrides={"prompts.dataset": None, "prompts.rows": rows(str(outside))})
    assert caught.value.field == "prompts.rows.0.audio"


def test_the_builtin_dataset_needs_no_upload(service):
    job = service.submit(preset="audio-tones")
    assert job.kind == "audio" and job.config["prompts"]["dataset"] == "builtin:audio-tones"


def test_the_rest_api_takes_clips_as_base64_beside_the_config(settings):
    import base64

    from fastapi.testclient import TestClient

    from app.server import create_app

    app = create_app(settings, studio=False)
    body = {
        "preset": "audio-tones",
        "overrides": {"prompts.dataset": None, "prompts.rows": rows("a.wav"), "audio.max_seconds": 2.0},
        "uploads": {"a.wav": base64.b64encode(wav()).decode()},
    }
    with TestClient(app) as client:
        created = client.post("/api/jobs", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["config"]["prompts"]["rows"][0]["audio"].endswith(f"/jobs/{created.json()['id']}/a.wav")
        refused = client.post("/api/jobs", json={**body, "uploads": {"a.wav": "not base64!"}})
        assert refused.status_code == 422 and refused.json()["detail"] == "uploads.a.wav: not base64 text"
        long = client.post("/api/jobs", json={**body, "uploads": {"a.wav": base64.b64encode(wav(3.0)).decode()}})
        assert long.status_code == 422 and "prompts.rows.0.audio" in long.json()["detail"]
