"""Picking rewards in a real browser: a two-reward LLM job (a rule reward plus a reward model with a
built-in model) built from the Launch form's reward rows without typing YAML, the preview, the dry run
with each reward's score per sample, the launch, and both rewards' per-step values in the job's curves."""

from __future__ import annotations

import re
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

expect.set_options(timeout=30_000)  # a redraw of the rows waits for the server on a busy machine

ARTIFACTS = REPO / "test-artifacts" / "studio"
STEPS = 4
RULE, MODEL_REWARD = "reward/builtin:tiny-lm-task", "reward/reward_model"


def pick(page, elem_id: str, option: str) -> None:
    """Choose ``option`` (a label's start) in a Gradio dropdown."""
    field = page.locator(f"#{elem_id} input")
    field.click()
    field.fill(option)
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click()


def test_two_reward_job_from_the_form_with_a_dry_run_and_per_reward_curves(tmp_path):
    with running_studio(tmp_path / "data") as studio, driver.chromium_page() as page:
        page.goto(studio.url)
        page.locator("#launch-button").wait_for()
        pick(page, "launch-preset", "tiny-lm")
        yaml = page.locator("#launch-yaml")
        yaml.get_by_text("name: builtin:tiny-lm-task").wait_for()
        driver.set_number(page, "launch-steps", STEPS)
        yaml.get_by_text(f"steps: {STEPS}").wait_for()

        # A second row: the reward model, with the built-in one it suggests, at half weight.
        page.locator("#launch-reward-add").click()
        page.locator("#launch-reward-1-name").wait_for()
        pick(page, "launch-reward-1-name", "Reward model (sequence classification) · reward_model")
        expect(page.locator("#launch-reward-1-model input")).to_have_value("builtin:tiny-lm-rm")
        expect(page.locator("#launch-reward-1-option-batch_size input")).to_have_value("16")  # from the schema
        driver.set_number(page, "launch-reward-1-weight", 0.5)
        yaml.get_by_text("model: builtin:tiny-lm-rm").wait_for()
        yaml.get_by_text("weight: 0.5").wait_for()
        expect(page.locator("#launch-errors")).to_contain_text("valid")

        # a wrong-architecture model is refused naming the row, before anything runs
        model = page.locator("#launch-reward-1-model input")
        model.fill("builtin:tiny-clip")
        model.press("Enter")
        expect(page.locator("#launch-reward-errors")).to_contain_text("Reward 2 · model: 'builtin:tiny-clip' is a")
        model.fill("builtin:tiny-lm-rm")
        model.press("Enter")
        expect(page.locator("#launch-errors")).to_contain_text("valid")
        expect(page.locator("#launch-reward-errors")).to_have_text("")

        page.locator("#launch-reward-try").click()
        status = page.locator("#launch-reward-try-status")
        status.get_by_text("reference samples").wait_for(timeout=driver.COMPARE_TIMEOUT_MS)
        table = page.locator("#launch-reward-try-table")
        for header in (RULE, MODEL_REWARD, "weighted total"):
            expect(table).to_contain_text(header)
        driver.screenshot(page, ARTIFACTS, "launch_reward_rows")
        cells = [line.strip() for line in table.inner_text().split("weighted total", 1)[1].splitlines() if line.strip()]
        rows = [cells[k : k + 5] for k in range(0, len(cells), 5)]  # #, sample, rule score, model score, total
        assert [row[0] for row in rows] == ["0", "1", "2", "3"], cells
        for _, _, rule, model, total in rows:  # the weighted total: 1 x rule + 0.5 x reward model
            assert float(total) == pytest.approx(float(rule) + 0.5 * float(model), abs=2e-4)

        page.locator("#launch-button").click()
        page.locator("#launch-result").get_by_text("Launched").wait_for(state="attached")
        job_id = page.locator("#launch-result code").first.text_content().strip()
        page.locator("#detail-header").get_by_text(job_id).wait_for()
        driver.wait_for_status(page, "succeeded")
        assert driver.curves_drawn(page) == 5
        # the reward panel draws each reward's own curve beside the summed reward, every step
        page.wait_for_function(
            """(names) => { const plot = document.querySelector('#detail-plot-reward .js-plotly-plot');
                return plot && plot.data && names.every(n => plot.data.some(t => t.name === n && t.x.length > 0)); }""",
            arg=[RULE, MODEL_REWARD],
        )
        traces = page.evaluate(
            "() => document.querySelector('#detail-plot-reward .js-plotly-plot').data.map(t => [t.name, t.x.length])"
        )
        assert dict(traces)[RULE] == STEPS and dict(traces)[MODEL_REWARD] == STEPS, traces
        driver.screenshot(page, ARTIFACTS, "job_detail_two_rewards")

        config = httpx.get(f"{studio.url}/api/jobs/{job_id}").json()["config"]
        assert [(r["name"], r["model"], r["weight"]) for r in config["rewards"]] == [
            ("builtin:tiny-lm-task", None, 1.0),
            ("reward_model", "builtin:tiny-lm-rm", 0.5),
        ]
        metrics = httpx.get(f"{studio.url}/api/jobs/{job_id}/metrics").json()
        for name in (RULE, MODEL_REWARD):  # the curves the reward panel draws beside reward/mean
            assert [step for step, _ in metrics[name]] == list(range(1, STEPS + 1)), name


def test_image_rewards_rows_remove_and_a_dry_run_with_its_images(tmp_path):
    """Text-to-image: a digits job gets a second built-in reward with a typed option, a third row added
    and removed again; the dry run shows the reference images it scored."""
    with running_studio(tmp_path / "data") as studio, driver.chromium_page() as page:
        page.goto(studio.url)
        page.locator("#launch-button").wait_for()
        yaml = page.locator("#launch-yaml")
        yaml.get_by_text("name: digits:even").wait_for()
        page.locator("#launch-reward-add").click()
        page.locator("#launch-reward-1-name").wait_for()
        pick(page, "launch-reward-1-name", "Built-in scorer · digits:class")
        yaml.get_by_text("name: digits:class").wait_for()  # the row is redrawn for its new reward
        expect(page.locator("#launch-reward-1-option-k input")).to_have_value("0")  # the schema's default
        driver.set_number(page, "launch-reward-1-option-k", 4)
        try:
            yaml.get_by_text("k: 4").wait_for()
        except Exception:
            driver.screenshot(page, ARTIFACTS, "reward_rows_option_failure")
            raise
        expect(page.locator("#launch-reward-1-model")).to_be_hidden()  # a built-in scorer takes no model

        page.locator("#launch-reward-add").click()
        page.locator("#launch-reward-2-name").wait_for()
        rows_in_yaml = "(n) => document.querySelector('#launch-yaml').innerText.split('- name: ').length === n + 1"
        page.wait_for_function(rows_in_yaml, arg=3)  # the preview's rewards: list has the third row
        page.locator("#launch-reward-2-remove").click()
        expect(page.locator("#launch-reward-2-name")).to_have_count(0)
        page.wait_for_function(rows_in_yaml, arg=2)
        expect(yaml).to_contain_text("k: 4")  # the rows kept are as they were

        page.locator("#launch-reward-try").click()
        status = page.locator("#launch-reward-try-status")
        status.get_by_text("reference samples").wait_for(timeout=driver.COMPARE_TIMEOUT_MS)
        table = page.locator("#launch-reward-try-table")
        for header in ("reward/digits:even", "reward/digits:class", "weighted total"):
            expect(table).to_contain_text(header)
        assert driver.gallery_images(page, "launch-reward-try-images") == 4
        driver.screenshot(page, ARTIFACTS, "launch_reward_rows_images")
