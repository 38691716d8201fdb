"""Drive the studio in Chromium the way a newcomer would: launch the digits-even demo from the form,
watch it train, compare against the reference, download the adapter. Shared by the browser test and
scripts/studio_screenshots.py (which regenerates docs/screenshots/)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.ui import share

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


def launch_digits_even(
    page, url: str | None, steps: int | None = None, algorithm: str = "ADRPO (adaptive beta)", name: str = "digits-even"
) -> str:
    """Open the studio (unless ``url`` is None), keep the digits-even preset, set the name, algorithm
    and (optionally) steps, press Launch: it opens the job. Returns the job id."""
    if url is not None:
        page.goto(url)
    open_tab(page, "Launch")
    page.locator("#launch-button").wait_for()
    field = page.locator("#launch-name textarea, #launch-name input").first
    field.fill(name)
    field.press("Tab")
    page.locator("#launch-algorithm").get_by_label(algorithm).check()
    if steps is not None:
        set_number(page, "launch-steps", steps)
        page.locator("#launch-yaml").get_by_text(f"steps: {steps}").wait_for()
    page.locator("#launch-yaml").get_by_text(f"name: {name}").wait_for()
    page.locator("#launch-button").click()
    # Launch switches to the job's page at once, so its message is read while the Launch tab is hidden.
    page.locator("#launch-result").get_by_text("Launched").wait_for(state="attached")
    job_id = page.locator("#launch-result code").first.text_content().strip()
    page.locator("#detail-header").get_by_text(job_id).wait_for()
    return job_id


def wait_for_status(page, status: str, timeout_ms: int = TRAIN_TIMEOUT_MS) -> None:
    page.locator("#detail-header").get_by_text(status).wait_for(timeout=timeout_ms)


CURVES = ("reward", "divergence", "beta", "spread", "loss")


def curves_drawn(page) -> int:
    """How many live charts Plotly has drawn (a plot div with at least one line)."""
    page.locator("#detail-plot-reward .js-plotly-plot").first.wait_for()
    return sum(page.locator(f"#detail-plot-{key} .js-plotly-plot path.js-line").count() > 0 for key in CURVES)


def curve_points(page, key: str = "reward") -> int:
    """Points of the first series of one live chart, read from Plotly's own data in the page."""
    return page.evaluate(
        """(key) => {
        const plot = document.querySelector(`#detail-plot-${key} .js-plotly-plot`);
        return plot && plot.data && plot.data.length ? plot.data[0].x.length : 0;
    }""",
        key,
    )


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


def push_from_page(page, repo: str, token: str) -> str:
    """Job detail's Hub box: repository and token typed, Push clicked; returns the line it answers."""
    box = page.locator("#share-box")
    if not page.locator("#share-push").is_visible():
        box.get_by_text(share.TITLE).click()
    page.locator("#share-repo textarea, #share-repo input").first.fill(repo)
    page.locator("#share-token input").fill(token)
    before = page.locator("#share-result").inner_text()
    page.locator("#share-push").click()
    page.wait_for_function(
        "before => { const el = document.querySelector('#share-result'); const text = el ? el.innerText.trim() : '';"
        " return /^(Not pushed|Pushed)/.test(text) && text !== before.trim(); }",
        arg=before,
    )
    return page.locator("#share-result").inner_text()


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.namelist())


def show_runs(page) -> None:
    """Runs tab with every job picked: the multiselect list stays open while options are clicked."""
    open_tab(page, "Runs")
    page.locator("#runs-jobs input").click()
    page.get_by_role("option").first.wait_for()
    count = page.get_by_role("option").count()
    for index in range(count):
        page.get_by_role("option").nth(index).click()
    page.keyboard.press("Escape")
    page.locator("#runs-note").get_by_text(f"{count} run(s).").wait_for()
    page.locator("#runs-pareto-diversity .js-plotly-plot").first.wait_for()


def screenshot(page, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
