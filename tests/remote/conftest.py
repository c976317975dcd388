"""Fixtures of the remote-operations tests: a real OpenSSH server, hosts, named processes.

``sshd`` is one loopback OpenSSH server for the whole session (see
:mod:`attpcdaq.remote.testing`); ``host`` runs each test twice, through
:class:`LocalHost` and through :class:`SshHost` to that server. Both reach the
same file system, so a test prepares and checks files directly.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from attpcdaq.remote import LocalHost
from attpcdaq.remote.testing import LoopbackSshd

# The child behind a "router" that listens: prints its port, then waits.
_LISTENER = ("import socket, sys, time\n"
             "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
             "print(s.getsockname()[1], flush=True); time.sleep(600)\n")


@pytest.fixture(scope="session")
def sshd():
    """A real sshd on 127.0.0.1 with its own host key, client key and known_hosts."""
    with LoopbackSshd() as server:
        yield server


@pytest.fixture
async def ssh_pool(sshd):
    """A HostPool that reaches the test sshd; closed after the test."""
    async with sshd.pool() as pool:
        yield pool


@pytest.fixture
async def ssh_host(sshd, ssh_pool):
    """The test sshd as an SshHost."""
    return sshd.host(ssh_pool)


@pytest.fixture(params=["local", "ssh"])
async def host(request, sshd):
    """Each remote operation's test runs through both transports."""
    if request.param == "local":
        yield LocalHost()
        return
    async with sshd.pool() as pool:
        yield sshd.host(pool)


@pytest.fixture
def unique_name():
    """A process name no other test or program uses (at most 15 characters)."""
    return lambda prefix="rtr": f"{prefix}{uuid.uuid4().hex[:15 - len(prefix)]}"


@pytest.fixture
def spawn(tmp_path):
    """Start a process named ``name`` (its file name: comm) in ``cwd``; killed afterwards.

    ``listen=True`` makes it a Python child listening on a free port, returned
    as ``proc.port``; otherwise it is ``sleep`` under another name.
    """
    started: list[subprocess.Popen] = []
    bindir = tmp_path / "bin"
    bindir.mkdir()

    def start(name: str, cwd: Path, *, listen: bool = False, program: str | None = None):
        link = bindir / uuid.uuid4().hex / name
        link.parent.mkdir()
        target = program or (os.path.realpath(sys.executable) if listen else "/bin/sleep")
        link.symlink_to(target)
        args = [str(link), "-c", _LISTENER] if listen else [str(link), "600"]
        proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        started.append(proc)
        proc.port = int(proc.stdout.readline()) if listen else None
        _wait_comm(proc.pid, name[:15])
        return proc

    yield start
    for proc in started:  # only the processes this fixture started, by PID
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _wait_comm(pid: int, comm: str, timeout: float = 5.0) -> None:
    """Wait until the kernel shows the new process under its new name (after exec)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never showed up as {comm!r}")


@pytest.fixture
def snapshot():
    """Everything under a directory: {relative path: size or 'dir' or 'link'}."""

    def take(root: Path) -> dict[str, object]:
        found: dict[str, object] = {}
        for path in sorted(root.rglob("*")):
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "link"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.stat().st_size
        return found

    return take


@pytest.fixture
def make_files():
    """Create files ``{name: size}`` (distinct contents) in a directory."""

    def make(directory: Path, files: dict[str, int]) -> None:
        for index, (name, size) in enumerate(files.items()):
            (directory / name).write_bytes(bytes([65 + index % 26]) * size)

    return make
