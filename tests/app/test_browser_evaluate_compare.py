"""The Evaluate tab's "Compare runs" chart in headless Chromium: one coloured loss line per chosen
run, each run its own colour and a legend entry (read from the chart's SVG), never a colour
gradient. The values behind it are tested without a browser in tests/app/test_compare_chart.py."""
from __future__ import annotations

import pytest

from tests.app.browser import choose, expect, needs_chromium, open_tab, plot_lines
from tests.app.conftest import train_run

pytestmark = needs_chromium

LINE = "#eval-curves [aria-roledescription='line mark'][stroke]"


@pytest.fixture(scope="module")
def two_runs(studio, generated_dataset) -> tuple[int, int]:
    """Two short runs (2 and 3 steps)."""
    return train_run(studio, generated_dataset, steps=2), train_run(studio, generated_dataset, steps=3)


def line_colours(page) -> set[str]:
    return set(page.locator(LINE).evaluate_all("marks => marks.map(m => m.getAttribute('stroke'))"))


def test_compare_runs_draws_one_coloured_line_and_legend_entry_per_run(page, two_runs):
    first, second = two_runs
    open_tab(page, "Evaluate")
    choose(page, "eval-compare-runs", f"job {first} · ")
    page.wait_for_function(f'() => document.querySelectorAll("{LINE}").length == 1')
    choose(page, "eval-compare-runs", f"job {second} · ")
    page.wait_for_function(f'() => document.querySelectorAll("{LINE}").length == 2')
    lines = plot_lines(page, "eval-curves")
    assert sorted(lines.values()) == [2, 3], lines  # one line per run, a point per step
    assert len(line_colours(page)) == 2  # each run its own colour
    legend = page.locator("#eval-curves [aria-roledescription='legend']")
    expect(legend).to_have_count(1)
    label = legend.get_attribute("aria-label") or ""  # the legend's full text (the drawn one is cut short)
    assert label.startswith("Symbol legend titled 'run' for stroke color with 2 values"), label  # not "Gradient legend"
    assert f"(job {first})" in label and f"(job {second})" in label
