"""``attpcdaq emulate ecc`` run as a real process, talked to over loopback."""

import asyncio
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from attpcdaq.get import ConfigId, EccClient, EccRefused, EccUnreachable, Operation, State

COMMAND = [sys.executable, "-m", "attpcdaq", "emulate", "ecc"]
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class Emulator:
    """A running ``attpcdaq emulate ecc`` process and the URLs it announced."""

    def __init__(self, process: asyncio.subprocess.Process, urls: list[str]) -> None:
        self.process = process
        self.urls = urls

    async def exit_status(self, timeout: float = 10) -> int:
        """Wait (bounded) for the process to end and return its status."""
        return await asyncio.wait_for(self.process.wait(), timeout)


@pytest.fixture
async def emulate():
    """Start ``attpcdaq emulate ecc ARGS...`` and read its ``listening on`` lines."""
    processes = []

    async def start(*args: str, count: int = 1) -> Emulator:
        process = await asyncio.create_subprocess_exec(
            *COMMAND, "--port", "0", "--count", str(count), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        processes.append(process)
        urls = []
        for _ in range(count):
            line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            match = LISTENING.fullmatch(line.strip())
            assert match, f"unexpected line {line!r}"
            urls.append(f"http://127.0.0.1:{match[1]}/")
        return Emulator(process, urls)

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()  # only processes this fixture started, by their own handle
            await process.wait()


async def test_count_servers_announce_themselves_and_keep_their_own_state(emulate):
    emulator = await emulate("--transition-seconds", "0.05", count=3)
    assert len(set(emulator.urls)) == 3
    async with EccClient(emulator.urls[1]) as ecc:
        await ecc.transition(Operation.DESCRIBE, ConfigId("cobo1", "pulser", "pulser"), None)
    states = []
    for url in emulator.urls:
        async with EccClient(url) as ecc:
            states.append((await ecc.get_state()).state)
    assert states == [State.IDLE, State.DESCRIBED, State.IDLE]
    # The example configs are served by default.
    async with EccClient(emulator.urls[0]) as ecc:
        assert "cobo3/pulser/pulser" in [str(c) for c in await ecc.get_config_ids()]
    assert _command_line(emulator.process.pid).startswith(b"getEccSoapServer")
    emulator.process.send_signal(signal.SIGTERM)
    assert await emulator.exit_status() == 0
    assert await emulator.process.stdout.read() == b""  # one line per server, no more


async def test_ctrl_c_exits_cleanly(emulate):
    emulator = await emulate()
    emulator.process.send_signal(signal.SIGINT)
    assert await emulator.exit_status() == 0
    assert b"Traceback" not in await emulator.process.stderr.read()


async def test_the_process_exits_with_its_last_server(emulate):
    emulator = await emulate()
    async with EccClient(emulator.urls[0]) as ecc:
        await ecc.server_exit()
    assert await emulator.exit_status() == 0


async def test_fault_flags_apply_to_the_served_servers(emulate):
    emulator = await emulate("--transition-seconds", "0.05", "--fail-next", "Describe",
                             "--crash-next", "Prepare")
    config = ConfigId("cobo0", "experiment", "experiment")
    async with EccClient(emulator.urls[0]) as ecc:
        with pytest.raises(EccRefused, match="Emulated failure"):
            await ecc.transition(Operation.DESCRIBE, config, None)
        await ecc.transition(Operation.DESCRIBE, config, None)
        with pytest.raises(EccUnreachable):
            await ecc.transition(Operation.PREPARE, config, None)
    assert await emulator.exit_status() == 1  # its only server was killed


def _command_line(pid: int) -> bytes:
    """What ``ps`` shows for ``pid``."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.parametrize(("args", "message"), [
    (("--config-dir", "/nonexistent/configs"),
     "configuration directory /nonexistent/configs does not exist"),
    (("--count", "0"), "argument --count: expected a whole number of servers >= 1"),
    (("--transition-seconds", "soon"), "argument --transition-seconds: 'soon' is not a number"),
    (("--fail-next", "Launch"), "argument --fail-next: invalid choice: 'Launch'"),
    (("--port", "65535", "--count", "2"), "ports 65535-65536 are not all in 1-65535"),
])
def test_bad_arguments_exit_2_with_a_clear_message(args, message):
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_port_in_use_exits_2_and_names_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr

