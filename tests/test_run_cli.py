"""``attpcdaq status|transition|start|stop|runs`` as subprocesses against a live
``attpcdaq demo`` on loopback: the exit codes 0, 1 and 2 and what they print."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    """A running ``attpcdaq demo`` (transitions of 0.2 s) and its URL and token."""

    def __init__(self, tmp: Path) -> None:
        self.log = tmp / "demo.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "attpcdaq", "demo", "--port", str(free_port()),
             "--data-dir", str(tmp / "data"), "--transition-seconds", "0.2"],
            stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout],
                         daemon=True).start()
        printed: dict[str, str] = {}
        deadline = time.monotonic() + 90
        while len(printed) < 3:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"the demo printed {printed}; log:\n{self.log.read_text()}")
            key, _, value = line.strip().partition(": ")
            if key in ("URL", "Login", "Token"):
                printed[key] = value
        self.url, self.token = printed["URL"], printed["Token"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    running = Demo(tmp_path_factory.mktemp("run-cli"))
    yield running
    running.stop()


def cli(*args: str, token: str | None = None, env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """``attpcdaq ARGS`` in a subprocess, the token (if any) in ATTPCDAQ_TOKEN."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("ATTPCDAQ_TOKEN", "ATTPCDAQ_URL")}
    if token is not None:
        environment["ATTPCDAQ_TOKEN"] = token
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "attpcdaq", *args], capture_output=True,
                          text=True, env=environment, timeout=timeout)


def run_cli(demo: Demo, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return cli(*args, "--url", demo.url, token=demo.token, **kwargs)


def test_status_walk_start_refused_stop_and_runs(demo):
    shown = run_cli(demo, "status")
    assert shown.returncode == 0, shown.stderr
    assert "demo experiment: Idle" in shown.stdout
    for name in ("CoBo[0]", "CoBo[3]", "MuTAnT", "DataRouter4"):
        assert name in shown.stdout
    status = json.loads(run_cli(demo, "status", "--json").stdout)
    assert status["overall_state_name"] == "Idle" and status["engine_alive"]

    # Nothing is running: a Stop is refused here, and walks nothing up to Ready.
    refused = run_cli(demo, "stop")
    assert refused.returncode == 1
    assert "nothing to stop" in refused.stderr
    assert json.loads(run_cli(demo, "status", "--json").stdout)["overall_state_name"] == "Idle"

    walked = run_cli(demo, "transition", "ready")
    assert walked.returncode == 0, walked.stderr
    assert "Go to Ready" in walked.stdout and ": done" in walked.stdout
    assert json.loads(run_cli(demo, "status", "--json").stdout)["overall_state_name"] == "Ready"

    # Refused run details: 400, the field named, nothing started.
    wrong = run_cli(demo, "start", "--class", "NoSuchClass")
    assert wrong.returncode == 1
    assert "refused (400)" in wrong.stderr and "NoSuchClass" in wrong.stderr

    started = run_cli(demo, "start", "--title", "cli run", "--class", "Testing",
                      "--comment", "from the command line")
    assert started.returncode == 0, started.stderr
    assert "run 0 “cli run” started" in started.stdout
    run = json.loads(run_cli(demo, "status", "--json").stdout)["run"]
    assert (run["number"], run["running"], run["title"]) == (0, True, "cli run")

    # A second Start while the run is open: the server's refusal, printed, exit 1.
    again = run_cli(demo, "start", "--title", "second")
    assert again.returncode == 1
    assert "refused (409)" in again.stderr and "already running" in again.stderr
    as_json = run_cli(demo, "transition", "running", "--json")
    assert as_json.returncode == 1
    assert "already running" in json.loads(as_json.stdout)["detail"]

    stopped = run_cli(demo, "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    command = json.loads(stopped.stdout)
    assert (command["status"], command["description"]) == ("done", "Stop the run (all servers)")
    assert json.loads(run_cli(demo, "status", "--json").stdout)["run"]["running"] is False

    listed = run_cli(demo, "runs", "--csv")
    assert listed.returncode == 0, listed.stderr
    rows = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert len(rows) == 1
    assert (rows[0]["number"], rows[0]["title"], rows[0]["class"], rows[0]["comment"],
            rows[0]["status"]) == ("0", "cli run", "Testing", "from the command line",
                                   "stopped")
    assert float(rows[0]["duration_seconds"]) > 0
    table = run_cli(demo, "runs")
    assert table.returncode == 0 and "1 run(s)" in table.stdout and "cli run" in table.stdout
    assert json.loads(run_cli(demo, "runs", "--json").stdout)["runs"][0]["class"] == "Testing"


def wait_for_state(demo: Demo, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(run_cli(demo, "status", "--json").stdout)["overall_state_name"] != name:
        assert time.monotonic() < deadline, f"the DAQ did not get to {name}"
        time.sleep(0.2)


def test_timeout_exits_1_and_no_wait_returns_the_queued_command(demo):
    # After the test above the DAQ is Ready: three steps down to Idle take longer than
    # no time at all, so the command is still pending or running at the first look.
    late = run_cli(demo, "transition", "idle", "--timeout", "0")
    assert late.returncode == 1, late.stderr
    assert "is still pending after 0 s" in late.stderr or "is still running after 0 s" \
        in late.stderr
    wait_for_state(demo, "Idle")  # it went on by itself

    queued = run_cli(demo, "transition", "described", "--no-wait", "--json")
    assert queued.returncode == 0, queued.stderr
    number = json.loads(queued.stdout)["command"]
    assert isinstance(number, int)
    wait_for_state(demo, "Described")


def test_a_bad_token_or_no_token_exits_2(demo):
    bad = cli("status", "--url", demo.url, "--token", "not-a-token")
    assert bad.returncode == 2
    assert "refused the token (401)" in bad.stderr
    none = cli("status", "--url", demo.url)
    assert none.returncode == 2 and "no API token" in none.stderr


def test_nothing_listening_exits_2():
    port = free_port()  # bound then closed: nothing listens there
    for args in (["status"], ["start", "--title", "x"], ["stop"], ["runs", "--csv"],
                 ["transition", "ready"]):
        done = cli(*args, "--url", f"http://127.0.0.1:{port}/", token="anything")
        assert done.returncode == 2, (args, done.stderr)
        assert f"cannot reach http://127.0.0.1:{port}/api/" in done.stderr
        assert done.stdout == ""


def test_wrong_arguments_exit_2():
    done = cli("transition", "sideways", token="anything")
    assert done.returncode == 2 and "invalid choice" in done.stderr
