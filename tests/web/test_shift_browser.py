"""A shift in a real headless Chromium against ``attpcdaq demo`` (issue 9's browser test):
define an observable, start a run with a title from the Start dialog, stop it, fill its
run sheet in place, find the values in the CSV export, see the log entry the engine
drafted once the run was filed, and see the value drawn on the charts page."""

from __future__ import annotations

import csv
import re
import time

import pytest
from playwright.sync_api import Locator, Page, expect
from web.test_browser import (
    STEP_TIMEOUT_MS,
    choose_configs,
    log_in,
    server_rows,
    wait_for_state,
)
from web.test_run_sheet_browser import add_observable
from web.test_unattributed_browser import until

pytestmark = pytest.mark.browser


@pytest.fixture
def viewport():
    return {"width": 1600, "height": 900}

TITLE = "Beam on target — 10 pnA ✓ «¹⁴C»"
COLUMN = "beam current [pnA]"
#: Filing after Stop (the routers' files moved, counted, the configurations backed up).
FILING_TIMEOUT_S = 60






def reload_until(page: Page, found: Locator, timeout: float, what: str) -> None:
    """Reload a page that does not refresh itself until ``found`` is on it."""
    deadline = time.monotonic() + timeout
    while not found.count():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} on {page.url}")
        page.reload()


def test_a_shift_start_with_a_title_fill_the_sheet_export_logbook_chart(demo, page, tmp_path):
    log_in(page, demo)
    page.goto(demo.url + "observables/")
    add_observable(page, "beam current", "float", units="pnA", help_text="Faraday cup")

    # Configurations chosen, Ready, then Start with the run's details from the dialog.
    page.goto(demo.url)
    rows = server_rows(page)
    expect(rows).to_have_count(5)
    for index in range(5):  # the engine's first poll
        expect(rows.nth(index)).to_contain_text("online")
    expect(page.locator("#overall-state")).to_have_text("Idle")
    choose_configs(page)
    page.click("button[data-action=go_ready]")
    wait_for_state(page, "Ready", timeout=4 * STEP_TIMEOUT_MS)
    page.click("button[data-action=start]")
    dialog = page.locator("#start-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#start-help")).to_contain_text("The first run of the experiment")
    page.fill("#start-title-input", TITLE)
    page.select_option("#start-class", "Beam")
    page.click("#start-submit")
    expect(dialog).to_be_hidden()
    wait_for_state(page, "Running")
    expect(page.locator("#run-status")).to_have_text("Running")
    number = page.locator("#run-number").inner_text()
    assert number.isdigit()
    run = demo.api(f"runs/{number}")
    assert (run["title"], run["class"]) == (TITLE, "Beam")

    page.once("dialog", lambda confirm: confirm.accept())  # "Stop the run?"
    page.click("button[data-action=stop]")
    wait_for_state(page, "Ready")
    expect(page.locator("#run-status")).to_have_text("Stopped")
    expect(page.locator("#run-number")).to_have_text(number)
    until(lambda: demo.api(f"runs/{number}")["filed"], FILING_TIMEOUT_S, f"run {number} filed")

    # The run's row of the sheet, filed, edited in place.
    page.goto(demo.url + "runs/")
    row = page.locator("#run-rows > tr").filter(has=page.locator(f'th a:text-is("{number}")'))
    expect(row).to_have_count(1)
    expect(row.locator("[data-col=title]")).to_have_text(TITLE)
    expect(row.locator("[data-col=class]")).to_have_text("Beam")
    expect(row.get_by_text("filed", exact=True)).to_be_visible()
    row.locator("[data-action=edit-run]").click()
    form = page.locator("tr.run-edit form")
    expect(form).to_be_visible()
    expect(form.locator("text=Faraday cup")).to_be_visible()  # the help beside the field
    form.locator('[data-observable="beam current"]').fill("10.5")
    form.locator("[data-action=save-run]").click()
    expect(page.locator("tr.run-edit")).to_have_count(0)
    expect(page.locator("#sheet-message")).to_contain_text(f"Run {number} saved")
    expect(row).to_contain_text("10.5")
    assert demo.api(f"runs/{number}")["measurements"] == {"beam current": 10.5}

    # The CSV export, downloaded from the page's link, read back with the csv module.
    with page.expect_download() as download:
        page.click("#export-csv")
    saved = tmp_path / "runs.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename.endswith(".csv")
    with saved.open(newline="", encoding="utf-8-sig") as file:
        records = list(csv.DictReader(file))
    assert COLUMN in records[0], f"no {COLUMN!r} in the header: {list(records[0])}"
    (record,) = [r for r in records if r["run"] == number]
    assert (record["title"], record["class"], record[COLUMN]) == (TITLE, "Beam", "10.5")
    assert float(record[COLUMN]) == 10.5

    # The logbook: the engine's draft of the run (written once the run is filed).
    page.goto(demo.url + "logbook/")
    entry = page.locator("#log-entries article").filter(
        has=page.locator(f'header a:text-is("run {number}")'))
    reload_until(page, entry, FILING_TIMEOUT_S, f"the drafted entry of run {number}")
    expect(entry).to_have_count(1)
    expect(entry.locator("header")).to_contain_text("drafted by the engine")
    expect(entry.locator("header")).to_contain_text("draft: to confirm")
    user = re.escape(demo.user)
    text = entry.locator("textarea")  # a draft opens for the operator to edit and confirm
    expect(text).to_have_value(re.compile(f"^Run {number} — Beam · “{re.escape(TITLE)}”\n"))
    expect(text).to_have_value(re.compile(f"Started .* by {user}; stopped .* by {user}\\."))
    expect(entry.get_by_role("button", name="Confirm")).to_be_visible()

    # The charts page: beam current against run number, one point drawn.
    page.goto(demo.url + "runs/")
    page.click("#charts-link")
    page.select_option("#chart-x", "number")
    page.select_option("#chart-y", label="beam current (pnA)")
    canvas = page.locator("#run-chart")
    expect(canvas).to_have_attribute("data-label", "beam current (pnA)")
    expect(canvas).to_have_attribute("data-points", "1")
    points = page.evaluate("""() => {
        const chart = Chart.getChart(document.getElementById('run-chart'));
        const meta = chart.getDatasetMeta(0);
        const data = chart.data.datasets[0].data;
        return meta.data.map((p, i) => ({x: p.x, y: p.y, value: data[i].y, run: data[i].run,
                                         at: data[i].x}));
    }""")
    assert [(p["value"], p["run"], p["at"]) for p in points] == [(10.5, int(number),
                                                                  int(number))]
    assert all(p["x"] > 0 and p["y"] > 0 for p in points)  # placed inside the canvas
    assert page.errors == []
