"""`attpcdaq demo` end to end, driven through its API as a script on shift would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from attpcdaq.get import iter_frames

EXPERIMENT = "demo experiment"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    """A running `attpcdaq demo` and its API."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "attpcdaq", "demo", "--port", str(free_port()),
             "--data-dir", str(data_dir), "--transition-seconds", "0.2"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines = {}
        while len(lines) < 3:
            line = self.process.stdout.readline()
            assert line, "the demo exited before it was ready"
            key, _, value = line.strip().partition(": ")
            if key in ("URL", "Login", "Token"):
                lines[key] = value
        self.url, self.login, self.token = lines["URL"], lines["Login"], lines["Token"]

    def api(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.url + "api/" + path, data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def command(self, target: str, timeout: float = 30) -> dict:
        number = self.api("transition", {"target": target})["command"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outcome = self.api(f"commands/{number}")
            if outcome["status"] in ("done", "failed"):
                return outcome
            time.sleep(0.1)
        pytest.fail(f"command {target} did not finish")

    def wait_filed(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("status")["run"]
            if run and run["filed"]:
                return run
            time.sleep(0.2)
        pytest.fail("the run was not filed")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(30)


@pytest.fixture
def demo(tmp_path):
    running = Demo(tmp_path / "demo")
    yield running
    if running.process.poll() is None:
        running.process.kill()


def test_a_demo_run_leaves_filed_graw_files_and_config_backups(demo):
    assert demo.login.startswith("demo / ")
    assert demo.data_dir.stat().st_mode & 0o777 == 0o700  # its database and secret key
    assert demo.command("ready")["status"] == "done"
    started = demo.command("running")
    assert (started["status"], started["error"]) == ("done", "")
    time.sleep(1.5)
    assert demo.command("ready")["status"] == "done"
    run = demo.wait_filed()
    assert run["number"] == 0
    for number in range(4):  # the MuTAnT's router gets no data
        folder = demo.data_dir / "routers" / f"DataRouter{number}" / EXPERIMENT / "run_0000"
        files = sorted(folder.glob("*.graw"))
        assert len(files) == 4, folder
        for path in files:
            frames = list(iter_frames(path))
            assert frames and {f.cobo_idx for f in frames} == {number}
    backups = demo.data_dir / "config-backups" / EXPERIMENT / "run_0000"
    assert {p.name for p in backups.iterdir()} == {
        "describe-cobo0.xcfg", "describe-cobo1.xcfg", "describe-cobo2.xcfg",
        "describe-cobo3.xcfg", "describe-mutant.xcfg", "configure-experiment.xcfg"}
    # The next Start works, under the next number.
    again = demo.command("running")
    assert (again["status"], again["error"]) == ("done", "")
    assert demo.api("status")["run"]["number"] == 1
    routers_before = processes_in(demo.data_dir)
    assert len(routers_before) == 5
    assert demo.stop() == 0
    assert processes_in(demo.data_dir) == []  # Ctrl-C stopped everything it started


def processes_in(directory: Path) -> list[str]:
    """PIDs of live processes working in ``directory`` (the demo's routers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").startswith(str(directory)):
                found.append(proc.name)
        except OSError:
            continue
    return found
