"""The status page in a real headless Chromium, driving ``attpcdaq demo`` end to end.

The demo runs emulated ECC servers (four CoBos and a MuTAnT), the engine and the
web server; the test logs in, chooses configurations, walks to Ready, starts and
stops a run, and stops the demo with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Time for one state change to show: a transition (1 s in the demo), the engine's
#: poll and the page's, with room for two shared cores under load.
STEP_TIMEOUT_MS = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    """A running ``attpcdaq demo`` and what it printed: URL, login, token."""

    def __init__(self, tmp: Path) -> None:
        self.log = tmp / "demo.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "attpcdaq", "demo", "--port", str(free_port()),
             "--data-dir", str(tmp / "data")],
            stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        # A thread, so that a demo that hangs fails the test instead of blocking it.
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout],
                         daemon=True).start()
        printed = {}
        deadline = time.monotonic() + 60
        while len(printed) < 3:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"the demo printed {printed} in 60 s; log:\n{self.log.read_text()}")
            key, _, value = line.strip().partition(": ")
            if key in ("URL", "Login", "Token"):
                printed[key] = value
        self.url = printed["URL"]
        self.user, self.password = printed["Login"].split(" / ")
        self.token = printed["Token"]

    def api(self, path: str, body: dict | None = None) -> dict:
        """GET (or POST ``body`` to) an API endpoint with the demo's token."""
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + "api/" + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def stop(self) -> int:
        """Ctrl-C the demo; return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise








def log_in(page: Page, demo: Demo) -> None:
    page.goto(demo.url)
    expect(page).to_have_url(re.compile(r"/login/"))
    page.fill("#id_username", demo.user)
    page.fill("#id_password", demo.password)
    page.click("button[type=submit]")
    expect(page.locator("#overall-state")).to_be_visible()


def wait_for_state(page: Page, state: str, timeout: float = STEP_TIMEOUT_MS) -> None:
    """Wait for the overall state; fail at once, saying why, when a command fails."""
    page.wait_for_selector(f'#overall-state:text-is("{state}"), #last-failure', timeout=timeout)
    failure = page.locator("#last-failure")
    if failure.count():
        pytest.fail(f"waiting for {state}: {failure.inner_text()}")


def server_rows(page: Page):
    return page.locator("#ecc-servers > tr[id^=eccserver-]")


def choose_configs(page: Page) -> dict[str, str]:
    """Choose the pulser set of each server's board; return the choices by server name."""
    chosen = {}
    rows = server_rows(page)
    for index in range(rows.count()):
        row = rows.nth(index)
        name = row.locator("th").inner_text().strip()
        chooser = row.locator("select[data-chooser]")
        expect(chooser).to_be_enabled()  # the server is Idle
        describe = chooser.input_value().split("/")[0]
        chosen[name] = f"{describe}/pulser/pulser"
        chooser.select_option(chosen[name])
        expect(page.locator("#toasts")).to_contain_text(f"{name} will use {chosen[name]}")
    return chosen


def check_rows_are_kept(page: Page, demo: Demo) -> None:
    """Unchanged rows are not replaced, and a chooser in use is not, even when its row changed.

    Replacing a button between press and release loses the click; replacing an open
    list closes it under the user's pointer.
    """
    rows = server_rows(page)
    page.wait_for_timeout(2500)  # the polls after the last choice: rows as the server has them
    rows.evaluate_all("rows => rows.forEach(row => { row.daqMark = true; })")
    page.wait_for_timeout(2500)
    assert rows.evaluate_all("rows => rows.every(row => row.daqMark)"), "rows replaced"
    first, second = rows.nth(0), rows.nth(1)
    chooser = first.locator("select[data-chooser]")
    chooser.focus()
    chooser.dispatch_event("pointerdown")  # as a click that opens its list does
    server_id = first.get_attribute("id").removeprefix("eccserver-")
    demo.api(f"ecc-servers/{server_id}/transition", {"target": "described"})
    expect(page.locator("#overall-state")).to_have_text("Mixed")
    assert first.evaluate("row => row.daqMark") is True  # still the row being used
    expect(first.locator("[data-role=state]")).to_have_text("Idle")
    assert second.evaluate("row => row.daqMark") is True  # unchanged: not replaced
    page.locator("#run-panel").click()  # done with the chooser: the row catches up
    expect(first.locator("[data-role=state]")).to_have_text("Described")


def screenshot(page: Page, path: Path, size: tuple[int, int]) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.wait_for_timeout(300)  # a layout pass
    page.screenshot(path=path)
    page.screenshot(path=path.with_stem(path.stem + "-full"), full_page=True)


def test_a_run_from_the_status_page(demo, page, tmp_path):
    log_in(page, demo)
    rows = server_rows(page)
    expect(rows).to_have_count(5)
    for index in range(5):  # the engine's first poll
        expect(rows.nth(index)).to_contain_text("online")
    expect(page.locator("#overall-state")).to_have_text("Idle")

    chosen = choose_configs(page)
    selected = {s["name"]: s["selected_config"] for s in demo.api("status")["ecc_servers"]}
    assert selected == chosen

    check_rows_are_kept(page, demo)

    page.click("button[data-action=go_ready]")
    wait_for_state(page, "Ready", timeout=4 * STEP_TIMEOUT_MS)
    for index in range(5):
        expect(rows.nth(index).locator("select[data-chooser]")).to_be_disabled()

    page.click("button[data-action=start]")  # asks the run's details first
    expect(page.locator("#start-dialog")).to_be_visible()
    page.fill("#start-title-input", "Pulser test, gain 120 fC — run sheet ✓")
    page.select_option("#start-class", "Pulser")
    page.click("#start-submit")
    wait_for_state(page, "Running")
    expect(page.locator("#run-status")).to_have_text("Running")
    run_number = page.locator("#run-number").inner_text()
    assert run_number.isdigit()
    assert demo.api("status")["run"]["number"] == int(run_number)
    run = demo.api(f"runs/{run_number}")
    assert (run["title"], run["class"]) == ("Pulser test, gain 120 fC — run sheet ✓",
                                            "Pulser")
    duration = page.locator(".run-duration")
    first = duration.inner_text()
    expect(duration).not_to_have_text(first, timeout=3000)  # it ticks
    screenshot(page, tmp_path / "running-1366x768.png", (1366, 768))
    screenshot(page, tmp_path / "running-2560x1440.png", (2560, 1440))

    page.once("dialog", lambda dialog: dialog.accept())  # "Stop the run?"
    page.click("button[data-action=stop]")
    wait_for_state(page, "Ready")
    expect(page.locator("#run-status")).to_have_text("Stopped")
    expect(page.locator("#run-number")).to_have_text(run_number)
    expect(page.locator("#recent-commands")).to_contain_text("Start a run (all servers)")
    assert page.errors == []
    assert demo.stop() == 0
    # With the server gone, the page says that what it shows may be out of date.
    expect(page.locator("#stale-banner")).to_be_visible(timeout=10_000)
