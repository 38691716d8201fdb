"""The Sweeps tab in Chromium against the real server and its embedded worker: the form shows the job count,
launching trains and evaluates every job, and the sweep page shows the points, the planes and the exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.studio_server import REPO, running_studio
from tests.browser import driver

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(driver.CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

ARTIFACTS = REPO / "test-artifacts" / "studio"
SWEEP_TIMEOUT_MS = 300_000
OVERRIDES = (
    "steps=2\ncheckpoint_every=2\nsample_every=100\ngroup_size=4\nprompts_per_step=2\n"
    "flow.sample_steps=4\neval.samples_per_prompt=8"
)


def fill(page, elem_id: str, text: str) -> None:
    field = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    field.fill(text)
    field.press("Tab")


def test_sweep_form_count_launch_and_page(tmp_path):
    with running_studio(tmp_path / "data") as studio, driver.chromium_page() as page:
        page.goto(studio.url)
        # The page's load events end by restating the selected tab (Launch): a tab clicked before they are
        # done snaps back (seen in Chromium, not fixed yet), so wait for the Launch form's preview first.
        page.locator("#launch-yaml").get_by_text("name: digits-even").wait_for()
        page.wait_for_timeout(2000)
        driver.open_tab(page, "Sweeps")
        expect(page.locator("#sweep-count")).to_contain_text("27 jobs")  # the default grid, before anything runs
        fill(page, "sweep-grid", "algorithm=adrpo,fixed\nbeta0=0.1,-1")
        expect(page.locator("#sweep-count")).to_contain_text("Not launchable")
        fill(page, "sweep-grid", "algorithm=adrpo,fixed")
        fill(page, "sweep-seeds", "0 1")
        fill(page, "sweep-overrides", OVERRIDES)
        expect(page.locator("#sweep-count")).to_contain_text("4 jobs")
        page.locator("#sweep-launch").click()
        expect(page.locator("#sweep-count")).to_contain_text("Launched", timeout=30_000)
        expect(page.locator("#sweep-status")).to_contain_text("finished", timeout=SWEEP_TIMEOUT_MS)
        expect(page.locator("#sweep-status")).to_contain_text("4 evaluated")
        expect(page.locator("#sweep-points")).to_contain_text("adrpo")
        expect(page.locator("#sweep-points")).to_contain_text("fixed")
        expect(page.locator("#sweep-points")).to_contain_text("±")
        page.locator("#sweep-plot img").first.wait_for()
        expect(page.locator("#sweep-jobs")).to_contain_text("succeeded")
        with page.expect_download() as download_info:
            page.locator("#sweep-export-csv").click()
        target = tmp_path / "points.csv"
        download_info.value.save_as(target)
        lines = target.read_text().splitlines()
        assert lines[0].startswith("algorithm,method,seeds,") and len(lines) == 3
        driver.screenshot(page, ARTIFACTS, "sweep")
