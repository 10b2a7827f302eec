from tests.app.browser import open_tab, table_rows, expect
from tests.app.conftest import train_run

def test_shot(page, studio, generated_dataset):
    a = train_run(studio, generated_dataset, steps=2)
    b = train_run(studio, generated_dataset, steps=3, learning_rate=1e-3)
    open_tab(page, "Runs")
    rows = table_rows(page, "runs-table")
    expect(rows).to_have_count(2)
    rows.nth(0).locator("[role=gridcell]").nth(1).click()
    rows.nth(1).locator("[role=gridcell]").nth(1).click()
    page.wait_for_timeout(4000)
    page.screenshot(path="/tmp/runs.png", full_page=True)
    html = page.locator("#runs-curves").evaluate("e => e.outerHTML")
    open("/tmp/curves.html", "w").write(html)
    print(page.locator("#runs-compare").inner_text())
