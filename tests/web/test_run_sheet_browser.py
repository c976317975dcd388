"""The run sheet in a real headless Chromium against ``attpcdaq demo``: define observables
(and reorder them by drag and drop), fill a run's sheet in place (a refused value said
beside its field, nothing saved), and see a chart drawn from the values."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect
from web.test_browser import STEP_TIMEOUT_MS, Demo, log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def viewport():
    return {"width": 1600, "height": 900}

NOTE = "gas «isobutane» ☢ <b>not bold</b>"






def go(demo: Demo, target: str) -> None:
    """Take every server to ``target`` through the API and wait for the command's end."""
    command = demo.api("transition", {"target": target})["command"]
    deadline = time.monotonic() + 4 * STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        found = demo.api(f"commands/{command}")
        if found["status"] in ("done", "failed"):
            assert (found["status"], found["error"]) == ("done", ""), found
            return
        time.sleep(0.1)
    pytest.fail(f"timed out going to {target}")


def add_observable(page: Page, name: str, kind: str, **fields: str) -> None:
    page.fill("#id_name", name)
    page.select_option("#id_kind", kind)
    for field, value in fields.items():
        page.fill(f"#id_{field}", value)
    page.click("#observable-form button[type=submit]")
    expect(page.locator("#observable-rows .observable-name", has_text=name)).to_be_visible()


def drag(page: Page, handle, onto) -> None:
    """Drag ``handle`` by the mouse to the upper half of ``onto``, in steps, as a hand does."""
    start, end = handle.bounding_box(), onto.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 2, steps=20)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 1, steps=5)
    page.mouse.up()


def observable_names(page: Page) -> list[str]:
    return [n.strip() for n in page.locator("#observable-rows .observable-name").all_inner_texts()]


def test_define_observables_fill_a_run_in_place_and_chart_it(demo, page):
    go(demo, "ready")
    go(demo, "running")
    number = demo.api("status")["run"]["number"]
    go(demo, "ready")

    log_in(page, demo)
    page.goto(demo.url + "observables/")
    add_observable(page, "beam current", "float", units="pA", minimum="0", maximum="500",
                   help_text="From the Faraday cup")
    add_observable(page, "gas", "text")
    # A refused one: said beside the field, nothing added.
    page.fill("#id_name", "gas")
    page.click("#observable-form button[type=submit]")
    expect(page.locator('[data-error-for="name"]')).to_contain_text("has an observable named")
    assert observable_names(page) == ["beam current", "gas"]

    # Drag "gas" above "beam current": the order is saved (and survives a reload).
    drag(page, page.locator("#observable-rows tr", has_text="gas").locator(".drag-handle"),
         page.locator("#observable-rows tr", has_text="beam current").locator(".drag-handle"))
    expect(page.locator("#order-message")).to_contain_text("Order of demo experiment's "
                                                           "observables saved.")
    page.reload()
    assert observable_names(page) == ["gas", "beam current"]

    # The run's row turns into a form.
    page.goto(demo.url + "runs/")
    run_row = page.locator("#run-rows > tr").filter(
        has=page.locator(f'th a:text-is("{number}")'))
    expect(run_row).to_have_count(1)
    run_row.locator("[data-action=edit-run]").click()
    form = page.locator("tr.run-edit form")
    expect(form).to_be_visible()
    expect(form.locator("text=From the Faraday cup")).to_be_visible()
    form.locator('[data-observable="beam current"]').fill("lots")
    form.locator('[data-observable="gas"]').fill(NOTE)
    form.locator("[name=title]").fill("pulser, gain 120 fC")
    form.locator("[data-action=save-run]").click()
    error = page.locator('tr.run-edit [data-error-for="beam current"]')
    expect(error).to_have_text("beam current is not a number")
    expect(page.locator("#sheet-message")).to_contain_text("Nothing was saved")
    # Nothing saved: the run has no title and no values yet.
    detail = demo.api(f"runs/{number}")
    assert detail.get("title", "") == "" and not detail.get("measurements")

    page.locator('tr.run-edit [data-observable="beam current"]').fill("42.5")
    page.locator("tr.run-edit [data-action=save-run]").click()
    expect(page.locator("tr.run-edit")).to_have_count(0)
    run_row = page.locator(f"#run-rows > tr:has(th a:text-is('{number}'))")
    expect(run_row).to_contain_text("pulser, gain 120 fC")
    expect(run_row).to_contain_text("42.5")
    expect(run_row).to_contain_text(NOTE)  # as text, not markup
    expect(run_row.locator("b")).to_have_count(0)
    expect(page.locator("#sheet-message")).to_contain_text(f"Run {number} saved")

    # The chart of the value, drawn by Chart.js from the committed files.
    page.click("#charts-link")
    page.select_option("#chart-y", label="beam current (pA)")
    canvas = page.locator("#run-chart")
    expect(canvas).to_have_attribute("data-label", "beam current (pA)")
    expect(canvas).to_have_attribute("data-points", "1")
    points = page.evaluate("""() => {
        const chart = Chart.getChart(document.getElementById('run-chart'));
        const meta = chart.getDatasetMeta(0);
        const data = chart.data.datasets[0].data;
        return meta.data.map((p, i) => ({x: p.x, y: p.y, value: data[i].y, run: data[i].run}));
    }""")
    assert [(p["value"], p["run"]) for p in points] == [(42.5, number)]
    assert all(p["x"] > 0 and p["y"] > 0 for p in points)  # placed inside the canvas
    # Pixels were drawn where the point is.
    painted = page.evaluate("""([x, y]) => {
        const canvas = document.getElementById('run-chart');
        const ratio = canvas.width / canvas.clientWidth;
        const data = canvas.getContext('2d').getImageData(
            Math.round(x * ratio) - 2, Math.round(y * ratio) - 2, 5, 5).data;
        return Array.from(data).some((v, i) => i % 4 === 3 && v > 0);
    }""", [points[0]["x"], points[0]["y"]])
    assert painted
    # Events of the run, once filed (counted from the files), against its start time.
    deadline = time.monotonic() + 4 * STEP_TIMEOUT_MS / 1000
    while not demo.api(f"runs/{number}").get("filed") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert demo.api(f"runs/{number}")["filed"]
    page.select_option("#chart-x", "time")
    page.select_option("#chart-y", "events")
    expect(canvas).to_have_attribute("data-label", "Events")
    expect(page.locator("#chart-message")).to_have_text("1 run(s).")
    assert page.evaluate("Chart.getChart(document.getElementById('run-chart'))"
                         ".data.datasets[0].data[0].y") > 0
    assert page.errors == []
