"""The Runs tab in headless Chromium: one row per run with its name; clicking runs compares them
with one drawn loss line per run (read from the chart's SVG, not a screenshot), the settings
that differ and their evaluations side by side; a run's name is edited in place and shown
everywhere (Chat's model list too)."""
from __future__ import annotations

import re

import pytest

from tests.app.browser import expect, fill, needs_chromium, open_tab, plot_lines, table_rows
from tests.app.conftest import train_run

pytestmark = needs_chromium

#: The chart redraws after the Runs tab reads the runs' metrics; under the full suite's load on 2
#: cores that has taken longer than Playwright's default 30 s once.
LINES_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def two_runs(studio, generated_dataset) -> tuple[int, int]:
    """Two short runs that differ in length and learning rate (2 and 3 steps)."""
    return (train_run(studio, generated_dataset, steps=2),
            train_run(studio, generated_dataset, steps=3, learning_rate=1e-3))


def click_run(page, job_id: int) -> None:
    """Click the name cell of the run whose job column is `job_id`."""
    rows = table_rows(page, "runs-table")
    expect(rows.first).to_be_visible()
    for index in range(rows.count()):
        cells = rows.nth(index).locator("[role=gridcell]")
        if cells.first.inner_text().strip() == str(job_id):
            cells.nth(1).click()
            return
    raise AssertionError(f"no row for job {job_id} in the runs table")


def test_compare_draws_one_line_per_selected_run(page, two_runs):
    first, second = two_runs
    open_tab(page, "Runs")
    expect(table_rows(page, "runs-table")).to_have_count(2)
    expect(page.locator("#runs-table")).to_contain_text("mote · job-1-eval_harmful · 3 steps")
    click_run(page, first)
    page.wait_for_function("() => document.querySelectorAll(\"#runs-curves [aria-roledescription='line mark'][stroke]\").length == 1", timeout=LINES_TIMEOUT_MS)
    click_run(page, second)
    page.wait_for_function("() => document.querySelectorAll(\"#runs-curves [aria-roledescription='line mark'][stroke]\").length == 2", timeout=LINES_TIMEOUT_MS)
    lines = plot_lines(page, "runs-curves")
    assert sorted(lines.values()) == [2, 3], lines  # one line per run, a point per step
    assert any(f"(job {first})" in name for name in lines) and any(f"(job {second})" in name for name in lines)
    expect(page.locator("#runs-settings")).to_contain_text("train.learning_rate")
    expect(page.locator("#runs-evaluation")).to_contain_text("not evaluated")
    expect(page.locator("#runs-curves")).to_contain_text("Training loss per step")
    click_run(page, first)  # a second click takes the run out again
    page.wait_for_function("() => document.querySelectorAll(\"#runs-curves [aria-roledescription='line mark'][stroke]\").length == 1", timeout=LINES_TIMEOUT_MS)


def test_a_renamed_run_shows_its_name_in_the_runs_and_chat_lists(page, studio, two_runs):
    first, _ = two_runs
    open_tab(page, "Runs")
    click_run(page, first)
    expect(page.locator("#runs-name textarea, #runs-name input").first).to_have_value(re.compile("mote · "))
    fill(page, "runs-name", "baseline lr 2e-5")
    page.locator("#runs-rename").click()
    expect(page.locator("#runs-rename-note")).to_contain_text("Renamed")
    expect(page.locator("#runs-table")).to_contain_text("baseline lr 2e-5")
    open_tab(page, "Chat")
    page.locator("#chat-refresh").click()
    page.locator("#chat-subject-2 input").click()
    expect(page.locator("li[role=option]", has_text=f"baseline lr 2e-5 (job {first})")).to_have_count(1)
