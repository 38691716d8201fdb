"""Regenerate docs/screenshots/{launch,jobs,job_detail,compare,runs}.png from the real studio.

Starts `adrpo serve` (API + studio + embedded worker) in a fresh data directory, then drives Chromium
through the newcomer's path: the digits-even demo with ADRPO and the fixed-beta baseline, the job
page, a comparison, the jobs table and the Runs (Pareto) view.

    .venv/bin/python scripts/studio_screenshots.py [--out docs/screenshots]

Needs Debian's chromium and playwright (as the browser tests); takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import expect  # noqa: E402

from tests.app.studio_server import running_studio  # noqa: E402
from tests.browser import driver  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_studio(Path(scratch) / "data") as studio,
        driver.chromium_page() as page,
    ):
        page.goto(studio.url)
        page.locator("#launch-button").wait_for()
        page.locator("#launch-reward-0-name").wait_for()  # the reward rows are drawn after the page loads
        driver.screenshot(page, args.out, "launch")

        driver.launch_digits_even(page, None, algorithm="Fixed beta (baseline)", name="digits-even-fixed")
        driver.wait_for_status(page, "succeeded")
        driver.launch_digits_even(page, None)  # the preset's ADRPO run, 120 steps
        driver.wait_for_status(page, "succeeded")
        driver.curves_drawn(page)
        driver.gallery_images(page, "detail-policy-gallery")
        driver.screenshot(page, args.out, "job_detail")

        driver.run_comparison(page, seed=7, samples=8)
        driver.screenshot(page, args.out, "compare")
        driver.open_tab(page, "Jobs")
        expect(page.locator("#jobs-table")).to_contain_text("digits-even-fixed")
        driver.screenshot(page, args.out, "jobs")
        driver.show_runs(page)
        page.wait_for_timeout(1500)
        driver.screenshot(page, args.out, "runs")
    for name in ("launch", "jobs", "job_detail", "compare", "runs"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
