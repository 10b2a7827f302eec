"""What the browser tests share: Playwright's expect with a patient timeout, the skip when
Debian's chromium is missing, and the small steps a user takes (open a tab, pick a dropdown
option, fill a field, read a table's rows or a plot's data)."""
from __future__ import annotations

import re
import shutil

import pytest

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect
expect.set_options(timeout=30_000)  # a loaded 2-core machine answers slowly; a real failure still fails
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
JOB_TIMEOUT_MS = 180_000
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}


def open_page(browser, url: str, viewport: dict = DESKTOP):
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    expect(page.locator("#tab-data-button, [role=tab]").first).to_be_visible(timeout=30_000)
    return page


def open_tab(page, name: str) -> None:
    """Click a tab; on a narrow screen the tabs that do not fit sit in Gradio's "More tabs" menu."""
    tab = page.get_by_role("tab", name=name)
    more = page.get_by_role("button", name="More tabs")
    expect(tab.or_(more).first).to_be_visible()  # the page has drawn its tabs (e.g. after a reload)
    if tab.count() == 0:
        page.get_by_role("button", name="More tabs").click()
        tab = page.locator(".overflow-dropdown button", has_text=name)
    tab.click()


def choose(page, elem_id: str, option: str) -> None:
    """Pick a dropdown option whose label contains `option`."""
    page.locator(f"#{elem_id} input").click()
    page.locator("li[role=option]", has_text=option).first.click()


def fill(page, elem_id: str, value) -> None:
    field = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    field.fill(str(value))
    field.press("Tab")  # commits the value (a change event), as a user leaving the field does


def table_rows(page, elem_id: str):
    """The body rows of a Gradio 6 table (a virtual list of role=row elements)."""
    return page.locator(f"#{elem_id} [role=row].virtual-row")


def error_badges(page, elem_id: str):
    """Gradio's red 'Error' marks on one component (its status tracker turned to an error)."""
    return page.locator(f"#{elem_id} .error, #{elem_id} [data-testid=status-tracker].error")


def wait_text(locator, pattern: str, timeout: int = JOB_TIMEOUT_MS) -> str:
    expect(locator).to_contain_text(re.compile(pattern), timeout=timeout)
    return locator.inner_text()


def plot_lines(page, elem_id: str) -> dict[str, int]:
    """The lines a Gradio LinePlot draws, read from its Vega SVG: {series: number of points}.
    Only lines with a colour count (a chart fed with the wrong column types draws uncoloured
    lines with undefined values, which the eye sees as an empty chart)."""
    marks = page.locator(f"#{elem_id} [aria-roledescription='line mark']").evaluate_all(
        "marks => marks.map(m => [m.getAttribute('aria-label'), m.getAttribute('stroke'), m.getAttribute('d')])")
    lines: dict[str, int] = {}
    for label, stroke, path in marks:
        series = re.search(r"run: (.*)$", label or "")
        if stroke and series and "undefined" not in label:
            lines[series.group(1)] = len(re.findall(r"[ML]", path or ""))
    return lines
