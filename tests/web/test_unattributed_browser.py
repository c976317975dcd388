"""Data written while no run was open, on the status page in a real headless Chromium,
against ``attpcdaq demo``.

Files dropped into a demo router's directory after a run was filed show in the panel
with the engine's alarm; the dialog refuses a hostile note in place, files them into
the run (the latest, chosen by default) or sets them aside, the demo's engine moves
them, and the alarms go once acknowledged.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from web.test_browser import STEP_TIMEOUT_MS, Demo, log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def viewport():
    return {"width": 1600, "height": 900}

NOTE = "CoBo[0] «ﾃｽﾄ» kept sending ☢: O'Brien knows <more>"
EXPERIMENT = "demo experiment"






def until(check, timeout: float, what: str):
    """Poll the demo's API until ``check()`` is true (the API has no wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def run(demo: Demo, target: str, timeout: float = 4 * STEP_TIMEOUT_MS / 1000) -> None:
    """Take every server to ``target`` through the API; fail saying why it failed."""
    command = demo.api("transition", {"target": target})["command"]
    found = until(lambda: (c := demo.api(f"commands/{command}"))["status"] in ("done",
                                                                                "failed") and c,
                  timeout, f"going to {target}")
    assert (found["status"], found["error"]) == ("done", ""), found


def drop_files(workdir: Path, stamp: str) -> dict[str, int]:
    """Two data files written as a board that goes on sending with no run would."""
    files = {f"CoBo0_AsAd0_{stamp}.000_0000.graw": 4096,
             f"CoBo0_AsAd1_{stamp}.001_0000.graw": 2048}
    for name, size in files.items():
        (workdir / name).write_bytes(b"\0" * size)
    return files


def test_unattributed_files_filed_into_the_latest_run_then_set_aside(demo, demo_dir, page):
    workdir = demo_dir / "data" / "routers" / "DataRouter0"
    log_in(page, demo)
    # A run, filed, as a shift leaves it (the demo preselects each board's configuration).
    run(demo, "ready")
    run(demo, "running")
    run(demo, "ready")
    status = until(lambda: (s := demo.api("status"))["run"]["filed"] and s, 60, "the run filed")
    number = status["run"]["number"]

    # Files arrive with no run open: the panel lists them, Start is refused meanwhile.
    late = drop_files(workdir, "2026-12-01T21:04:10")
    panel = page.locator("#unattributed")
    row = panel.locator("li[id^=unattributed-]")
    expect(row).to_have_count(1)
    expect(row.locator("[data-role=router]")).to_have_text("DataRouter0")
    expect(row.locator("[data-role=files]")).to_have_text("2 files, 6.1 kB")
    expect(panel).to_contain_text("Start is refused until someone chooses")
    alarm = ("2 file(s) on data router DataRouter0 were written while no run was open: "
             "choose on the status page where they go")
    expect(page.locator("#alarm-banner")).to_contain_text(alarm)
    (waiting,) = demo.api("status")["unattributed"]
    assert (waiting["router"], waiting["files"], waiting["bytes"]) == ("DataRouter0", 2, 6144)

    # File into run N: the latest run is chosen; a hostile note is refused in the dialog.
    button = row.locator("[data-role=file-into-run]")
    expect(button).to_have_text(f"File into run {number}…")
    button.click()
    dialog = page.locator("#unattributed-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#unattributed-run")).to_have_value(str(number))
    dialog.locator("#unattributed-note").fill("looks fine\u202e reversed")
    dialog.locator("#unattributed-submit").click()
    error = dialog.locator("#unattributed-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("U+202E")
    expect(dialog).to_be_visible()  # open, to fix the note
    assert demo.api("status")["unattributed"][0]["decision"] == ""  # nothing changed
    dialog.locator("#unattributed-note").fill(NOTE)
    dialog.locator("#unattributed-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text(f"files go into run {number}")
    expect(row.locator("[data-role=moved]")).to_be_visible()
    expect(row.locator("[data-role=decision]")).to_contain_text(f"into run {number}")
    expect(row.locator("[data-role=note]")).to_have_text(f"Note: {NOTE}")
    folder = workdir / EXPERIMENT / f"run_{number:04d}"
    assert {name: (folder / name).stat().st_size for name in late} == late
    detail = demo.api(f"runs/{number}")
    assert any(NOTE in problem and "DataRouter0" in problem for problem in detail["problems"])

    # More files: set aside, without a note.
    aside = drop_files(workdir, "2026-12-01T22:10:00")
    fresh = panel.locator("li[id^=unattributed-]:not([data-settled])")
    expect(fresh).to_have_count(1)
    fresh.locator("[data-role=set-aside]").click()
    expect(dialog.locator("#unattributed-run-field")).to_be_hidden()
    dialog.locator("#unattributed-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("files go aside")
    until(lambda: demo.api("status")["unattributed"] == [], 30, "the files set aside")
    (stamped,) = (workdir / EXPERIMENT / "unattributed").iterdir()
    assert {name: (stamped / name).stat().st_size for name in aside} == aside
    expect(panel).not_to_contain_text("Start is refused")

    # The engine's alarms stay until acknowledged, on the page.
    entries = page.locator("#alarm-banner li", has_text="written while no run was open")
    expect(entries.filter(has_text=alarm)).to_have_count(2)  # one per record, two files each
    for remaining in (1, 0):
        entries.first.get_by_role("button", name="Acknowledge").click()
        expect(entries).to_have_count(remaining)
    expect(page.locator("#banners")).not_to_contain_text("written while no run was open")
    assert not [a for a in demo.api("status")["alarms"]
                if "written while no run was open" in a["message"]]
    assert list(workdir.glob("*.graw")) == []
    assert page.errors == []
