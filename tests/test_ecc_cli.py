"""`attpcdaq ecc`, the terminal client, against a real emulator process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from attpcdaq.emulator.process import EmulatorProcess


def attpcdaq(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attpcdaq", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module", params=["2.7", "2.8"])
def url(request):
    """An emulated server of each gSOAP generation."""
    with EmulatorProcess(["ecc", "--transition-seconds", "0.05", "--no-data",
                          "--gsoap", request.param]) as emulator:
        assert emulator.urls[0].startswith("http://127.0.0.1:")
        yield emulator.urls[0]


def test_configs_lists_one_set_per_line(url):
    result = attpcdaq("ecc", "--url", url, "configs")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "cobo0/experiment/experiment" in lines and "mutant/pulser/pulser" in lines
    assert all(line.count("/") == 2 for line in lines)


def test_the_whole_cycle_and_back(url, tmp_path: Path):
    links = tmp_path / "links.xml"
    links.write_text('<DataLinkSet><DataLink><DataSender id="CoBo[0]"/><DataRouter '
                     'name="r0" ipAddress="127.0.0.1" port="46005" type="TCP"/></DataLink>'
                     '</DataLinkSet>')
    assert attpcdaq("ecc", "--url", url, "state").stdout.strip() == "Idle"
    steps = [("describe", "Described"), ("prepare", "Prepared"), ("configure", "Ready"),
             ("start", "Running"), ("pause", "Paused"), ("resume", "Running"),
             ("stop", "Ready"), ("breakup", "Prepared"), ("undo", "Described"),
             ("undo", "Idle")]
    details = {"describe": " (boards: CoBo[0])",
               "configure": " (links: CoBo[0] -> r0; files used: describe-cobo0.xcfg, "
                            "configure-experiment.xcfg)"}
    for action, state in steps:
        result = attpcdaq("ecc", "--url", url, action, "--config",
                          "cobo0/experiment/experiment", "--links", str(links))
        assert (result.returncode, result.stdout.strip()) == (
            0, f"{action.capitalize()} done, now {state}{details.get(action, '')}"), \
            result.stderr


def test_an_ignored_transition_exits_1_naming_the_state(url):
    # The server answers 0 to a transition its state does not allow; nothing moves.
    result = attpcdaq("ecc", "--url", url, "configure", "--config", "cobo0/experiment/experiment")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: the server ignored Configure: it is Idle"
    assert attpcdaq("ecc", "--url", url, "state").stdout.strip() == "Idle"


def test_a_missing_configuration_file_is_named(url):
    result = attpcdaq("ecc", "--url", url, "describe", "--config", "cobo9/experiment/experiment")
    assert result.returncode == 1
    assert "Describe refused (ErrorCode 1): Exception: Configuration 'describe-cobo9' does " \
           "not exist." in result.stderr


def test_unreachable_server_exits_2():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = attpcdaq("ecc", "--url", f"http://127.0.0.1:{port}/", "state", "--timeout", "2")
    assert result.returncode == 2 and "cannot connect" in result.stderr


@pytest.mark.parametrize("args", [
    ["state"],  # no --url
    ["--url", "http://127.0.0.1:1/", "launch"],
    ["--url", "http://127.0.0.1:1/", "describe", "--config", "only/two"],
    ["--url", "http://127.0.0.1:1/", "describe", "--links", "/nonexistent/links.xml"],
])
def test_bad_arguments_exit_2(args):
    result = attpcdaq("ecc", *args)
    assert result.returncode == 2
    assert result.stderr.strip()
