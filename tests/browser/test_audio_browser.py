"""An audio job in a real browser: its samples are rows with a player for the clip, the question and the
answers; Compare plays the clip once above the reference's and the fine-tuned model's answers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.app.studio_server import REPO, running_studio
from tests.browser import driver

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(driver.CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

expect.set_options(timeout=30_000)
ARTIFACTS = REPO / "test-artifacts" / "studio"
# builtin:tiny-audio-lm's reduced build (tests/conftest.py sets ADRPO_AUDIO_RECIPE, the server inherits it)
OVERRIDES = {
    "steps": 2,
    "sample_every": 2,
    "checkpoint_every": 2,
    "group_size": 4,
    "prompts_per_step": 2,
    "llm.max_new_tokens": 8,
}


def wait_finished(url: str, job_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def players(page, elem_id: str) -> list[str]:
    return page.locator(f"#{elem_id} audio").evaluate_all("nodes => nodes.map(n => n.getAttribute('src'))")


def test_audio_samples_play_and_compare_shows_both_answers(tmp_path):
    with running_studio(tmp_path / "data") as studio, driver.chromium_page() as page:
        created = httpx.post(
            f"{studio.url}/api/jobs", json={"preset": "audio-tones", "overrides": OVERRIDES}, timeout=30
        ).json()
        job = wait_finished(studio.url, created["id"])
        assert job["status"] == "succeeded", job

        page.goto(f"{studio.url}/?job={job['id']}")
        expect(page.locator("#detail-header")).to_contain_text("succeeded", timeout=60_000)
        samples = page.locator("#detail-audio-samples")
        expect(samples.locator("audio").first).to_be_attached()
        sources = players(page, "detail-audio-samples")
        assert len(sources) == 4  # one player per logged question (the first four training rows)
        expect(samples).to_contain_text("reference")
        expect(samples).to_contain_text("policy")
        expect(samples).to_contain_text("How many beeps do you hear?")
        # the player's file is served (a WAV), and only because it is a sample's clip
        clip = httpx.get(studio.url + sources[0], timeout=10)
        assert clip.status_code == 200 and clip.content[:4] == b"RIFF"
        driver.screenshot(page, ARTIFACTS, "audio_job_detail")

        summary = driver.run_comparison(page, seed=3, samples=2)
        assert "mean reward: reference" in summary
        expect(page.locator("#compare-clip audio")).to_have_count(1)
        expect(page.locator("#compare-texts")).to_contain_text("answer")
        compare_clip = players(page, "compare-clip")[0]
        assert httpx.get(studio.url + compare_clip, timeout=10).status_code == 200
        driver.screenshot(page, ARTIFACTS, "audio_compare")
