"""The app in headless Chromium on the tiny model, as a user would go: import a question set,
generate chains, train on them, evaluate the base model and the run with a judge, chat with them side by side
(stage blocks visible), cancel a job, reload the page and find the running job re-attached.
The tests share one app per module and each opens a fresh page; what a step needs from an
earlier one (a chain dataset, a trained run) comes from a fixture that makes it through the job
queue, so any single test passes when run alone."""
from __future__ import annotations

import re

from jobs.records import JobStatus
from tests.app.browser import JOB_TIMEOUT_MS, choose, error_badges, expect, fill, needs_chromium, open_tab, table_rows
from tests.app.conftest import GENERATE_TOKENS, wait_job, write_questions_csv

pytestmark = needs_chromium


def fill_tiny_training(page, studio, steps: int) -> None:
    """The Train form on the tiny model: a few small steps on CPU."""
    fill(page, "train-model", studio.tiny_dir)
    for name, value in (("train_max_steps", steps), ("train_batch_size", 2), ("train_micro_batch_size", 1),
                        ("train_checkpoint_every", 0), ("train_warmup_ratio", 0)):
        fill(page, f"train-{name}", value)
    choose(page, "train-train_mixed_precision", "no")


def running_job_from_progress(page) -> int:
    expect(page.locator("#train-progress")).to_contain_text("running", timeout=JOB_TIMEOUT_MS)
    return int(re.search(r"Job (\d+) running", page.locator("#train-progress").inner_text()).group(1))


def test_import_a_question_set_and_generate_chains(page, studio, tmp_path):
    page.locator("#import-accordion > button").first.click()
    page.set_input_files("#import-file input[type=file]", str(write_questions_csv(tmp_path / "browser.csv")))
    fill(page, "import-name", "browser-set")
    page.locator("#import-preview").click()
    expect(page.locator("#import-rejected")).to_contain_text("empty question")
    expect(page.locator("#import-rejected")).to_contain_text("invalid kind")
    page.locator("#import-save").click()
    expect(page.locator("#import-summary")).to_contain_text("Saved as browser-set")
    expect(page.locator("#data-set input")).to_have_value("browser-set")
    fill(page, "gen-model", studio.tiny_dir)
    fill(page, "gen-limit", 2)
    for stage, tokens in (("analysis", 4), ("guidance", 4), ("answer", 4), ("check", 2)):
        fill(page, f"gen-{stage}-tokens", tokens)
    choose(page, "gen-policy", "keep")  # the tiny random model's chains would be dropped by the safe default
    page.locator("#gen-launch").click()
    expect(page.locator("#gen-status")).to_contain_text("succeeded", timeout=JOB_TIMEOUT_MS)
    page.locator("#chain-refresh").click()
    rows = table_rows(page, "chain-table")
    expect(rows).to_have_count(2, timeout=30_000)
    rows.first.locator("[role=gridcell]").nth(2).click()  # select a chain: its stages fill the edit boxes
    expect(page.locator("#chain-answer textarea")).not_to_have_value("", timeout=10_000)


def test_train_on_the_generated_chains_and_watch_it_live(page, studio, generated_dataset):
    open_tab(page, "Train")
    choose(page, "train-source", f"dataset {generated_dataset}:")
    fill_tiny_training(page, studio, steps=3)
    page.get_by_role("button", name="Equivalent YAML and command line").click()
    expect(page.locator("#train-yaml")).to_contain_text("max_steps: 3")
    expect(page.locator("#train-cli")).to_contain_text(f"--chain-dataset {generated_dataset}")
    page.locator("#train-launch").click()
    expect(page.locator("#train-progress")).to_contain_text("succeeded", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#train-progress")).to_contain_text("step 3/3")
    expect(page.locator("#train-log textarea")).to_have_value(re.compile("succeeded"))
    expect(page.locator("#train-log textarea")).to_have_value(re.compile(r"step 3/3  loss \d"))  # a line per step
    expect(page.locator("#train-loss")).to_be_visible()


def test_evaluate_the_base_model_and_the_trained_run_with_a_judge(page, studio, trained_run):
    open_tab(page, "Evaluate")
    choose(page, "eval-subjects", "base model")
    choose(page, "eval-subjects", "· mote")
    choose(page, "eval-sets", "eval_harmful")
    fill(page, "eval-limit", 2)
    fill(page, "eval-jailbreaks", 1)
    fill(page, "eval-tokens", 3)
    page.locator("#eval-launch").click()
    report = page.locator("#eval-report")
    expect(report).to_contain_text("succeeded", timeout=JOB_TIMEOUT_MS)
    expect(report).to_contain_text("Evaluation comparison")
    expect(report).to_contain_text("heuristic-refusal")
    # Charts are drawn only for metrics with values: the tiny model's answers may all be degenerate
    # (cut off at 3 tokens), and then the report says so instead.
    expect(report).to_contain_text(re.compile("degenerate|Harm"))
    expect(page.locator("#eval-judge input")).to_have_value("heuristic-refusal", timeout=30_000)
    expect(table_rows(page, "eval-samples").first).to_be_visible(timeout=30_000)  # the per-sample drill-down


def test_chat_side_by_side_shows_stage_blocks_with_their_experts(page, trained_run):
    open_tab(page, "Chat")
    page.locator("#chat-refresh").click()
    expect(page.locator("#chat-subject-1 input")).to_have_value(re.compile("base model"))
    expect(page.locator("#chat-subject-2 input")).to_have_value(re.compile(r"mote · .* \(job \d+\)"))
    page.get_by_role("button", name="Path, self-check and sampling").click()
    page.locator("#chat-path").get_by_text("full chain").click()
    page.locator("#chat-check input").check()
    fill(page, "chat-max", 4)
    fill(page, "chat-min", 2)
    fill(page, "chat-prompt", "How do I pick a lock?")
    page.locator("#chat-send").click()
    mote = page.locator("#chat-pane-2")
    expect(mote.locator("details.stage")).to_have_count(4, timeout=60_000)  # three stages + the self-check
    for label in ("Question Analysis · expert analysis + shared", "Answer Guidance · expert guidance + shared",
                  "Safe Answer · expert answer + shared", "Safety Checking"):
        expect(mote).to_contain_text(label)
    expect(page.locator("#chat-pane-1 details.stage summary").first).to_contain_text("Safe Answer · expert base")
    page.locator("#chat-colour input").check()
    expect(mote.locator(".colour-experts .tok.x-guidance").first).to_be_attached()


def test_cancel_a_running_job_from_the_jobs_tab(page, studio):
    open_tab(page, "Train")
    fill_tiny_training(page, studio, steps=500)
    page.locator("#train-launch").click()
    job_id = running_job_from_progress(page)
    open_tab(page, "Jobs")
    row = table_rows(page, "jobs-table").filter(has_text="running").first
    expect(row).to_contain_text(str(job_id))
    row.locator("[role=gridcell]").first.click()
    expect(page.locator("#jobs-selected input")).to_have_value(str(job_id))
    expect(page.locator("#jobs-detail textarea")).to_have_value(re.compile("status +running"))
    page.locator("#jobs-cancel").click()
    expect(table_rows(page, "jobs-table").first).to_contain_text("cancelled", timeout=60_000)
    assert studio.queue.get(job_id).status is JobStatus.CANCELLED


def test_a_reloaded_page_reattaches_to_the_running_job(page, studio):
    open_tab(page, "Train")
    fill_tiny_training(page, studio, steps=500)
    page.locator("#train-launch").click()
    job_id = running_job_from_progress(page)
    page.reload()
    open_tab(page, "Train")
    expect(page.locator("#train-run input")).to_have_value(re.compile(rf"\(job {job_id}\) · running"), timeout=30_000)
    progress = page.locator("#train-progress")
    expect(progress).to_contain_text(f"Job {job_id} running", timeout=30_000)
    expect(progress).to_contain_text(re.compile(r"step \d+/"), timeout=60_000)
    first = int(re.search(r"step (\d+)/", progress.inner_text()).group(1))
    expect(progress).not_to_contain_text(f"step {first}/", timeout=60_000)  # still moving after the reload
    open_tab(page, "Jobs")
    expect(table_rows(page, "jobs-table").first).to_contain_text("running")
    studio.services.cancel_job(job_id)
    assert wait_job(studio.queue, job_id).status is JobStatus.CANCELLED


def test_a_failed_import_says_why_once_and_marks_no_other_control(page, tmp_path):
    page.locator("#import-accordion > button").first.click()
    page.set_input_files("#import-file input[type=file]", str(write_questions_csv(tmp_path / "clash.csv")))
    fill(page, "import-name", "train")  # the name of a bundled set: refused
    page.locator("#import-save").click()
    expect(page.locator("#import-summary")).to_contain_text("Not imported")
    expect(page.locator("#import-summary")).to_contain_text("bundled set")
    expect(error_badges(page, "data-set")).to_have_count(0)
    expect(page.locator("#data-set input")).not_to_have_value("train-1")
    expect(page.locator(".toast-body")).to_have_count(0)


def test_a_cleared_chains_choice_cannot_launch_training(page, studio):
    open_tab(page, "Train")
    fill_tiny_training(page, studio, steps=2)
    before = len(studio.services.training_jobs())
    page.locator("#train-source input").fill("")
    page.locator("#train-source input").press("Tab")
    page.locator("#train-launch").click()
    expect(page.locator("#train-launch-note")).to_contain_text("Not queued")
    expect(page.locator("#train-launch-note")).to_contain_text("Chains to train on")
    assert len(studio.services.training_jobs()) == before
    choose(page, "train-source", "bundled sample chains")
    fill(page, "train-run-name", "sample check")
    page.locator("#train-launch").click()
    expect(page.locator("#train-launch-note")).to_contain_text(re.compile(r"Queued \*?\*?sample check\*?\*? as job \d+|Queued sample check as job \d+"))
    job_id = int(re.search(r"as job (\d+)", page.locator("#train-launch-note").inner_text()).group(1))
    expect(page.locator("#train-launch-note")).to_contain_text("2 steps")
    studio.services.cancel_job(job_id)
    wait_job(studio.queue, job_id)


def test_a_cancelled_cpu_training_job_saves_its_progress_and_its_retry_resumes_after_step_0(page, studio):
    from sqlalchemy import func, select

    from jobs.records import Metric

    open_tab(page, "Train")
    fill_tiny_training(page, studio, steps=100_000)  # far more than it can do before the cancel
    page.locator("#train-launch").click()
    job_id = running_job_from_progress(page)
    expect(page.locator("#train-progress")).to_contain_text(re.compile(r"step ([3-9]|\d\d+)/"), timeout=JOB_TIMEOUT_MS)
    open_tab(page, "Jobs")
    fill(page, "jobs-selected", job_id)
    page.locator("#jobs-cancel").click()
    cancelled = wait_job(studio.queue, job_id, timeout=60)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.exit_code != -9, cancelled.error
    with studio.queue.sessions() as session:
        done = session.scalar(select(func.max(Metric.step)).where(Metric.job_id == job_id))
    page.locator("#jobs-retry").click()
    expect(page.locator("#jobs-selected input")).not_to_have_value(str(job_id))
    retry = int(page.locator("#jobs-selected input").input_value())
    assert studio.queue.get(retry).retry_of == job_id

    def first_step_of_retry():
        with studio.queue.sessions() as session:
            return session.scalar(select(func.min(Metric.step)).where(Metric.job_id == retry))

    from tests.jobs.conftest import wait_for
    first = wait_for(first_step_of_retry, 120, every=0.5, what=f"retry {retry} to train a step")
    assert first == done + 1 > 1  # it resumed from the checkpoint saved when cancelled
    studio.services.cancel_job(retry)
    wait_job(studio.queue, retry)


def test_a_finished_generation_shows_its_chains_without_refresh(page, studio):
    expect(page.locator("#chain-dataset")).to_be_visible()
    job_id = studio.services.launch_generation("eval_harmful", model=str(studio.tiny_dir), limit=2,
                                               dataset_name="shown by itself",
                                               settings={"batch_size": 2, "flagged_policy": "keep", **GENERATE_TOKENS})
    assert wait_job(studio.queue, job_id).status is JobStatus.SUCCEEDED
    expect(page.locator("#chain-dataset input")).to_have_value(re.compile("shown by itself"), timeout=30_000)
    expect(table_rows(page, "chain-table")).to_have_count(2, timeout=30_000)
