"""Drive the studio in Chromium the way a newcomer would: launch the digits-even demo from the form,
watch it train, compare against the reference, download the adapter. Shared by the browser test and
scripts/studio_screenshots.py (which regenerates docs/screenshots/)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1360, "height": 1000}
TRAIN_TIMEOUT_MS = 150_000
COMPARE_TIMEOUT_MS = 90_000


@contextmanager
def chromium_page(**context_options) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, **context_options)
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def set_number(page, elem_id: str, value: float) -> None:
    field = page.locator(f"#{elem_id} input")
    field.fill(str(value))
    field.press("Tab")  # Gradio reads a number on blur


def launch_digits_even(page, url: str, steps: int) -> None:
    """Open the studio, keep the digits-even preset, shorten it, press Launch: it opens the job."""
    page.goto(url)
    page.locator("#launch-button").wait_for()
    set_number(page, "launch-steps", steps)
    page.locator("#launch-yaml").get_by_text(f"steps: {steps}").wait_for()
    page.locator("#launch-button").click()
    page.locator("#detail-header").get_by_text("digits-even").wait_for()


def wait_for_status(page, status: str, timeout_ms: int = TRAIN_TIMEOUT_MS) -> None:
    page.locator("#detail-header").get_by_text(status).wait_for(timeout=timeout_ms)


def curves_drawn(page) -> int:
    """How many live charts show an image (matplotlib figures arrive as PNGs)."""
    page.locator("#detail-plot-reward img").first.wait_for()
    return sum(page.locator(f"#detail-plot-{key} img").count() > 0
               for key in ("reward", "divergence", "beta", "spread", "loss"))


def gallery_images(page, elem_id: str) -> int:
    page.locator(f"#{elem_id} img").first.wait_for()
    return page.locator(f"#{elem_id} img").count()


def run_comparison(page, seed: int = 7, samples: int = 8) -> str:
    """Compare tab (the launched job is already picked): same prompt and seed, both models."""
    open_tab(page, "Compare")
    page.locator("#compare-prompt textarea, #compare-prompt input").first.wait_for()
    set_number(page, "compare-seed", seed)
    page.locator("#compare-run").click()
    page.locator("#compare-status").get_by_text("succeeded").wait_for(timeout=COMPARE_TIMEOUT_MS)
    return page.locator("#compare-status").inner_text()


def download_first_adapter(page, folder: Path) -> Path:
    """Job detail: the newest checkpoint's download button; returns the saved zip."""
    open_tab(page, "Job detail")
    button = page.locator(".checkpoint-download").first
    button.wait_for()
    with page.expect_download() as download_info:
        button.click()
    download = download_info.value
    target = folder / (download.suggested_filename or "adapter.zip")
    download.save_as(target)
    return target


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.namelist())


def show_runs(page) -> None:
    """Runs tab with every job picked (the dropdown's options)."""
    open_tab(page, "Runs")
    dropdown = page.locator("#runs-jobs input")
    dropdown.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    for index in range(options.count()):
        dropdown.click()
        page.get_by_role("option").nth(0).click()
    page.keyboard.press("Escape")
    page.locator("#runs-pareto-diversity img").first.wait_for()


def screenshot(page, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
