"""The studio in a real browser (Debian's Chromium driven by Playwright) against the real server with
its embedded worker: a newcomer's path from the Launch form to a downloaded adapter, and auth."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.app.studio_server import REPO, running_studio
from tests.browser import driver

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(driver.CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]
pytest.importorskip("app.server", reason="needs the job service (branch svc)")
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

ARTIFACTS = REPO / "test-artifacts" / "studio"
DEMO_STEPS = 20  # digits-even logs samples and a checkpoint at its last step


def test_newcomer_launches_watches_compares_and_downloads(tmp_path):
    with running_studio(tmp_path / "data") as studio, driver.chromium_page() as page:
        driver.launch_digits_even(page, studio.url, DEMO_STEPS)
        driver.open_tab(page, "Launch")
        driver.screenshot(page, ARTIFACTS, "launch")
        driver.open_tab(page, "Job detail")
        driver.wait_for_status(page, "succeeded")
        assert driver.curves_drawn(page) == 5
        assert driver.gallery_images(page, "detail-reference-gallery") >= 4
        assert driver.gallery_images(page, "detail-policy-gallery") >= 4
        assert "digits-even" in page.locator("#detail-config").inner_text()
        driver.screenshot(page, ARTIFACTS, "job_detail")

        adapter = driver.download_first_adapter(page, tmp_path)
        names = driver.zip_names(adapter)
        assert any(name.endswith("adapter_config.json") for name in names), names
        assert any(name.endswith("adapter_model.safetensors") for name in names), names
        shutil.copy(adapter, ARTIFACTS / "adapter.zip")

        # The Hub box: no token, no push (the server's own is never used); a typed one is used once and
        # emptied (this machine has no hub: the push is refused as offline, without the token in the line).
        refused = driver.push_from_page(page, "me/from-browser", "")
        assert "token: type a Hugging Face token" in refused
        offline = driver.push_from_page(page, "me/from-browser", "hf_typed_in_the_browser")
        assert "cannot reach the hub" in offline and "hf_typed" not in offline
        assert page.locator("#share-token input").input_value() == ""

        summary = driver.run_comparison(page)
        assert "mean reward: reference" in summary
        assert driver.gallery_images(page, "compare-reference") >= 1
        assert driver.gallery_images(page, "compare-policy") >= 1
        driver.screenshot(page, ARTIFACTS, "compare")

        driver.open_tab(page, "Jobs")
        expect(page.locator("#jobs-table")).to_contain_text("succeeded")
        driver.screenshot(page, ARTIFACTS, "jobs")
        driver.show_runs(page)
        driver.screenshot(page, ARTIFACTS, "runs")

        # A reload keeps nothing in the tab: the page re-attaches to the job from the service.
        page.reload()
        driver.open_tab(page, "Jobs")
        expect(page.locator("#jobs-table")).to_contain_text("succeeded")


def test_with_auth_anonymous_browser_and_api_are_refused(tmp_path):
    credentials = ("ada", "s3cret-pass")
    with running_studio(tmp_path / "data", auth=credentials, worker=False) as studio:
        assert httpx.get(studio.url + "/api/jobs").status_code == 401
        assert httpx.get(studio.url + "/api/jobs", auth=credentials).status_code == 200
        with driver.chromium_page() as page:
            page.goto(studio.url)
            page.get_by_role("button", name="Login").wait_for()
            assert page.locator("#launch-button").count() == 0
            driver.screenshot(page, ARTIFACTS, "login")
            page.get_by_label("username").fill(credentials[0])
            page.get_by_label("password").fill(credentials[1])
            page.get_by_role("button", name="Login").click()
            page.locator("#launch-button").wait_for()
