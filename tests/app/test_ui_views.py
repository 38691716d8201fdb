"""How the job page and the Compare tab show samples, for image and text jobs (pure functions on the
service's own view models, no server)."""

from datetime import UTC, datetime

from app.ui import compare, detail
from app.ui.common import format_duration, format_progress, job_status_line
from worker.views import ComparisonView, SampleView


def sample(step, role, seed, kind="image", reward=0.5, text=None):
    path = f"/runs/j/samples/step-{step:06d}/{seed}.png" if kind == "image" else None
    return SampleView(
        step=step, role=role, prompt="any digit", seed=seed, kind=kind, text=text, image_path=path, reward=reward
    )


def test_samples_merge_without_repeats_and_the_reference_row_stays_beside_the_chosen_step():
    known = detail.sample_dicts([sample(0, "reference", 0), sample(0, "reference", 1), sample(20, "policy", 0)])
    merged = detail.merge_samples(
        known, detail.sample_dicts([sample(20, "policy", 0, reward=0.9), sample(40, "policy", 0)])
    )
    assert len(merged) == 4 and [s["reward"] for s in merged if s["step"] == 20] == [0.9]
    assert detail.sample_steps(merged) == [40, 20]
    reference = detail.gallery_items(merged, "reference", 40)
    assert len(reference) == 2 and all(step0.startswith("/runs/j/samples/step-000000/") for step0, _ in reference)
    # The caption is drawn under the image (a card); an unreadable image falls back to itself.
    assert detail.gallery_items(merged, "policy", 40) == [("/runs/j/samples/step-000040/0.png", None)]
    assert detail.caption({"reward": 0.5, "text": None}) == "reward 0.500"
    assert detail.caption({"reward": 0.91234, "text": "looks like 4 (97%)"}) == "looks like 4 (97%)\nreward 0.912"


def test_the_sample_step_follows_a_running_job_unless_an_older_one_was_picked():
    assert detail.shown_step([40, 20], 20, newest_before=20) == 40  # following: new samples arrived
    assert detail.shown_step([60, 40, 20], 20, newest_before=40) == 20  # picked by hand: stays
    assert detail.shown_step([40, 20], 20, newest_before=None) == 40  # a job just opened: its newest
    assert detail.shown_step([40, 20], 80, newest_before=40) == 40  # a step that is gone
    assert detail.shown_step([], None, newest_before=None) is None


def test_text_jobs_show_a_table_of_reference_and_chosen_step_rows():
    rows = detail.sample_dicts(
        [
            sample(0, "reference", 0, "text", 0.1, "2+2=5"),
            sample(10, "policy", 0, "text", 1.0, "2+2=4"),
            sample(20, "policy", 0, "text", 1.0, "4"),
        ]
    )
    frame = detail.text_frame(rows, 10)
    assert frame["reward"].tolist() == [0.1, 1.0]
    assert frame[["step", "role", "text"]].values.tolist() == [[0, "reference", "2+2=5"], [10, "policy", "2+2=4"]]
    state = detail.DetailState(job_id="j", kind="llm", samples=rows)
    reference, policy, table, audio = detail.sample_outputs(state, 10)
    assert reference["visible"] is False and policy["visible"] is False and table["visible"] is True
    assert audio["visible"] is False


def comparison(status, samples=(), error=None):
    return ComparisonView(
        id="c",
        job_id="j",
        step=None,
        prompt="any digit",
        seed=3,
        num_samples=2,
        status=status,
        error=error,
        created_at=datetime.now(UTC),
        finished_at=None,
        samples=list(samples),
    )


def test_comparison_summary_reports_progress_failure_and_the_reward_change():
    assert "generating on a worker" in compare.comparison_summary(comparison("queued"))
    assert "**Error:** out of memory" in compare.comparison_summary(comparison("failed", error="out of memory"))
    done = comparison("succeeded", [sample(0, "reference", 3, reward=0.2), sample(0, "policy", 3, reward=0.8)])
    assert "reference **0.2000** → fine-tuned **0.8000** (+0.6000)" in compare.comparison_summary(done)


def test_comparison_outputs_images_side_by_side_or_texts_in_one_table():
    images = compare.comparison_outputs(comparison("succeeded", [sample(0, "reference", 3), sample(0, "policy", 3)]))
    assert images[1]["value"] == [("/runs/j/samples/step-000000/3.png", None)] and images[3]["visible"] is False
    texts = compare.comparison_outputs(
        comparison(
            "succeeded",
            [sample(0, "reference", 3, "text", 0.30000001192092896, "5"), sample(0, "policy", 3, "text", 1.0, "4")],
        )
    )
    assert texts[1]["visible"] is False
    assert texts[3]["value"].values.tolist() == [[1, "5", 0.3, "4", 1.0]]  # rewards rounded, rows from 1


def test_job_numbers_read_as_a_person_expects():
    assert format_duration(59.6) == "1m 00s" and format_duration(3725) == "1h 02m" and format_duration(None) == "—"

    class Job:
        id, name, kind, algorithm, status = "abc123", "demo", "flow", "adrpo", "failed"
        current_step, total_steps, latest_reward, eta_seconds, error = 30, 120, 0.61234, None, "loss is nan"

    assert format_progress(Job) == "30/120 (25%)"
    line = job_status_line(Job)
    assert "**failed** · step 30/120 (25%)" in line and "latest reward 0.6123" in line and "loss is nan" in line


def test_sample_cards_upscale_the_real_pixels_smoothly_with_the_caption_below(tmp_path):
    from PIL import Image

    from app.ui import cards

    digit = Image.new("L", (8, 8), 0)
    digit.putpixel((3, 3), 255)
    blocky = digit.resize((64, 64), Image.NEAREST)  # as the engine writes an 8x8 digit
    assert cards.native_image(blocky.convert("RGB")).size == (8, 8)
    path = tmp_path / "p0-0.png"
    blocky.save(path)
    card = Image.open(cards.sample_card(path, "looks like 4 (97%)\nreward 0.912"))
    assert card.size == (cards.CARD_SIDE, cards.CARD_SIDE)
    strip = card.crop((0, cards.IMAGE_SIDE, cards.CARD_SIDE, cards.CARD_SIDE)).convert("L")
    assert min(strip.getdata()) < 100  # the caption is written in the strip under the image
    grey_levels = set(card.crop((0, 0, cards.CARD_SIDE, cards.IMAGE_SIDE)).convert("L").getdata())
    assert len(grey_levels) > 10  # smooth (bicubic), not 2-level blocks
    assert cards.sample_card(path, "other") == str(cards.card_path(path))  # built once, then reused


def test_the_job_header_and_table_say_what_a_running_job_does():
    from app.ui.jobs import jobs_frame

    class Job:
        id, name, kind, algorithm, status = "abc123", "demo", "llm", "adrpo", "running"
        current_step, total_steps, latest_reward, eta_seconds, error = 0, 120, None, None, None
        phase, phase_detail, cancel_requested = "building model", "builtin:tiny-lm is built once: step 3/9", False
        config = {"beta0": 0.05}
        created_at = datetime.now(UTC)

    line = job_status_line(Job)
    assert "**running** · *building model · builtin:tiny-lm is built once: step 3/9*" in line
    assert "adrpo β₀=0.05" in line
    row = jobs_frame([Job]).iloc[0]
    assert row["status"] == "running (building model)" and row["algorithm"] == "adrpo β₀=0.05"


def audio_sample(
    step, role, text, reward, clip="/runs/j/samples/audio/eval-0.wav", prompt="How many beeps? (A) 1 (B) 2"
):
    return SampleView(
        step=step,
        role=role,
        prompt=prompt,
        seed=0,
        kind="audio",
        text=text,
        image_path=None,
        audio_path=clip,
        reward=reward,
    )


def test_audio_jobs_show_one_player_per_question_with_the_answers_beside_it():
    rows = detail.sample_dicts(
        [
            audio_sample(0, "reference", "<answer>1</answer>", 0.0),
            audio_sample(0, "reference", "<answer>2</answer>", 1.0),  # a second completion of the same prompt
            audio_sample(10, "policy", "<answer>2</answer>", 1.0),
            audio_sample(20, "policy", "<answer>B</answer>", 1.0),
            audio_sample(0, "reference", "<answer>no</answer>", 0.0, "/runs/j/samples/audio/eval-1.wav", "Noise?"),
        ]
    )
    merged = detail.merge_samples([], rows)
    assert len(merged) == 5
    state = detail.DetailState(job_id="j", kind="audio", samples=merged)
    reference, policy, table, audio = detail.sample_outputs(state, 10)
    assert reference["visible"] is False and table["visible"] is False and audio["visible"] is True
    page = audio["value"]
    assert page.count("<audio") == 2 and "/gradio_api/file=/runs/j/samples/audio/eval-0.wav" in page
    assert (
        "&lt;answer&gt;2&lt;/answer&gt;" in page and "&lt;answer&gt;B&lt;/answer&gt;" not in page
    )  # step 20 not shown
    assert page.index("How many beeps?") < page.index("Noise?")


def test_an_audio_comparison_plays_its_clip_once_above_the_answers():
    clip = "/runs/j/comparisons/c/clip.wav"
    outputs = compare.comparison_outputs(
        comparison(
            "succeeded",
            [
                audio_sample(0, "reference", "<answer>1</answer>", 0.0, clip),
                audio_sample(0, "policy", "<answer>2</answer>", 1.0, clip),
            ],
        )
    )
    assert outputs[3]["value"].values.tolist() == [[1, "<answer>1</answer>", 0.0, "<answer>2</answer>", 1.0]]
    assert outputs[4]["visible"] is True and outputs[4]["value"].count("<audio") == 1
    texts = compare.comparison_outputs(comparison("succeeded", [sample(0, "reference", 3, "text", 0.3, "5")]))
    assert texts[4]["visible"] is False
