"""Exclude and Abort on the status page, in a real headless Chromium, against ``attpcdaq demo``.

The demo's engine runs the commands the page's reason dialog posts: an excluded
server's row is greyed and says why; a transition hung on an emulated board (the
emulator's fault endpoint) shows its seconds against the usual time, is flagged
"slow: maybe hung" past three times that (and 10 s), and its Abort button takes the
board out of the system while the emulated server goes on.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import Page, expect
from web.test_browser import STEP_TIMEOUT_MS, Demo, log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def viewport():
    return {"width": 1600, "height": 900}

REASON = "AsAd 2 trips «ﾃｽﾄ» ☢: O'Brien knows <more>"






def servers(demo: Demo) -> dict[str, dict]:
    return {s["name"]: s for s in demo.api("status")["ecc_servers"]}


def fault(url: str, **body) -> None:
    """Arm (or clear) a fault on an emulated ECC server."""
    request = urllib.request.Request(url + "_emulator/fault", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer)["ok"] is True


def run(demo: Demo, path: str, body: dict) -> dict:
    """Queue a command through the API and wait until the engine finished it."""
    command = demo.api(path, body)["command"]
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        found = demo.api(f"commands/{command}")
        if found["status"] in ("done", "failed"):
            return found
        time.sleep(0.05)  # polling its status: the API has no wait
    pytest.fail(f"command {command} did not finish: {found}")


def reason_dialog(page: Page):
    return page.locator("#reason-dialog")


def test_exclude_with_a_reason_then_abort_a_slow_transition(demo, page):
    log_in(page, demo)
    rows = page.locator("#ecc-servers > tr[id^=eccserver-]")
    expect(rows).to_have_count(5)
    for index in range(5):
        expect(rows.nth(index)).to_contain_text("online")
    by_name = servers(demo)

    # Exclude CoBo[3] with a reason: a refused reason is said in the dialog, which stays.
    row3 = page.locator(f"#eccserver-{by_name['CoBo[3]']['id']}")
    row3.locator("[data-role=exclude]").click()
    dialog = reason_dialog(page)
    expect(dialog).to_be_visible()
    expect(dialog.locator("#reason-title")).to_have_text("Exclude CoBo[3]")
    dialog.locator("#reason-input").fill("a\u202eb")
    dialog.locator("#reason-submit").click()
    expect(dialog.locator("#reason-error")).to_contain_text("RIGHT-TO-LEFT OVERRIDE")
    expect(dialog).to_be_visible()
    dialog.locator("#reason-input").fill(REASON)
    dialog.locator("#reason-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Queued: exclude CoBo[3]")
    expect(row3).to_have_attribute("data-excluded", "")
    expect(row3.locator("[data-role=excluded-reason]")).to_have_text(REASON)
    expect(row3.locator("[data-role=excluded]")).to_have_text("excluded")
    expect(row3.locator("[data-role=include]")).to_be_visible()
    assert servers(demo)["CoBo[3]"]["excluded_reason"] == REASON

    # A Describe on CoBo[0] teaches the engine its usual time; the next one hangs.
    cobo0 = by_name["CoBo[0]"]
    config = demo.api(f"ecc-servers/{cobo0['id']}/configs")["configs"][0]
    demo.api(f"ecc-servers/{cobo0['id']}/config", {"config": config})
    assert run(demo, f"ecc-servers/{cobo0['id']}/transition", {"target": "described"})[
        "status"] == "done"
    assert run(demo, f"ecc-servers/{cobo0['id']}/transition", {"target": "reset"})[
        "status"] == "done"
    fault(cobo0["url"], action="hang", operation="Describe")
    try:
        demo.api(f"ecc-servers/{cobo0['id']}/transition", {"target": "described"})
        row0 = page.locator(f"#eccserver-{cobo0['id']}")
        transition = row0.locator("[data-role=transition]")
        expect(transition).to_have_text(re.compile(r"Describing… \d+ s \(usually 1(\.\d)? s\)"))
        first = transition.inner_text()
        expect(transition).not_to_have_text(first, timeout=3000)  # the seconds tick
        # Past 3 x its usual time and 10 s: slow, with its Abort.
        abort = row0.locator("[data-role=abort]")
        expect(row0.locator("[data-role=slow]")).to_have_text("slow: maybe hung",
                                                             timeout=20_000)
        expect(abort).to_have_text("Abort CoBo[0]'s Describe")
        status = servers(demo)["CoBo[0]"]
        assert status["slow"] is True and status["transition_elapsed"] >= 10
        assert 0.5 < status["usual_transition_seconds"] < 3
        abort.click()
        expect(dialog.locator("#reason-title")).to_have_text("Abort CoBo[0]'s Describe")
        dialog.locator("#reason-input").fill("no answer for 10 s")
        dialog.locator("#reason-submit").click()
        expect(page.locator("#toasts")).to_contain_text("Queued: Abort Describe on CoBo[0]")
        # The engine gave up on it: CoBo[0] is out of the system, saying why.
        expect(row0).to_have_attribute("data-excluded", "")
        expect(row0.locator("[data-role=excluded-reason]")).to_contain_text(
            "Describe hung: abandoned by demo")
        expect(row0.locator("[data-role=slow]")).to_have_count(0)
        assert servers(demo)["CoBo[0]"]["transition_elapsed"] is None
    finally:
        fault(cobo0["url"], action="clear")
    assert page.errors == []
