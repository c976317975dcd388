"""Find processes by exact name and tell them apart by working directory or listening port.

Linux only: ``pgrep -x`` (exit status 0 = found, 1 = none) gives the PIDs,
then the kernel's own tables answer the rest, read as files (SFTP remotely):
``/proc/PID/stat`` (skip zombies), ``/proc/PID/cwd`` (readlink),
``/proc/PID/fd/*`` (socket inodes) and ``/proc/net/tcp{,6}`` (which inode
listens on which port). No ``ps`` or ``lsof`` output is parsed. The lab's
Mac minis have no /proc: they would need ``lsof -a -p PID -d cwd -Fn``.
"""

from __future__ import annotations

import asyncio
import posixpath
from typing import TYPE_CHECKING

from .exceptions import RemoteCommandError
from .results import ProcessInfo

if TYPE_CHECKING:
    from .base import RemoteHost

__all__ = ["COMM_LEN", "ere_escape", "find_processes", "parse_listening", "socket_inode"]

#: The kernel keeps 15 characters of a process name (TASK_COMM_LEN - 1):
#: getEccSoapServer runs as "getEccSoapServe".
COMM_LEN = 15
_ERE_SPECIAL = frozenset("\\.[]()*+?{}|^$")
_TCP_LISTEN = "0A"


def ere_escape(text: str) -> str:
    """Escape ``text`` so that pgrep's extended regular expression matches it literally."""
    return "".join("\\" + c if c in _ERE_SPECIAL else c for c in text)


def parse_listening(table: str) -> dict[int, int]:
    """Map socket inode to port for the LISTEN rows of /proc/net/tcp and tcp6.

    A row reads ``sl local_address rem_address st ... uid timeout inode``, for
    example ``0: 0100007F:B3A5 00000000:0000 0A ... 0 0 41235 ...``.
    """
    listening: dict[int, int] = {}
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[3] != _TCP_LISTEN or ":" not in fields[1]:
            continue  # the header row, or a connection that is not listening
        inode = int(fields[9])
        if inode:
            listening[inode] = int(fields[1].rsplit(":", 1)[1], 16)
    return listening


def socket_inode(link: str | None) -> int | None:
    """Return the inode of an fd link such as ``socket:[41235]``, or None for other fds."""
    if link and link.startswith("socket:[") and link.endswith("]"):
        return int(link[len("socket:["):-1])
    return None


async def _pgrep(host: RemoteHost, name: str) -> list[int]:
    """PIDs whose kernel name is ``name`` (cut to COMM_LEN), by pgrep's exit status."""
    done = await host._run(["pgrep", "-x", "--", ere_escape(name[:COMM_LEN])])
    if done.exit_status == 1:
        return []
    if done.exit_status != 0:
        raise RemoteCommandError(host.name, f"pgrep -x {name!r} failed", done.exit_status,
                                 done.stderr.decode(errors="replace"))
    return [int(word) for word in done.stdout.split()]


def _alive(stat: bytes | None) -> bool:
    """True unless the process is gone or a zombie (``/proc/PID/stat`` field 3)."""
    if not stat:
        return False
    # The name in parentheses may itself hold spaces and ')': split after the last ')'.
    fields = stat.rsplit(b")", 1)[-1].split()
    return bool(fields) and fields[0] not in (b"Z", b"X")


async def _ports(host: RemoteHost, pid: int, listening: dict[int, int]) -> frozenset[int]:
    """The TCP ports process ``pid`` listens on, from its socket fds."""
    fds = await host._listdir(f"/proc/{pid}/fd") or []
    links = await asyncio.gather(*(host._readlink(f"/proc/{pid}/fd/{fd}") for fd in fds))
    inodes = {socket_inode(link) for link in links}
    return frozenset(listening[i] for i in inodes if i in listening)


async def _inspect(host: RemoteHost, pid: int, name: str,
                   listening: dict[int, int] | None) -> ProcessInfo | None:
    """Describe one candidate PID, or None if it is gone, a zombie, or another program."""
    stat, cwd = await asyncio.gather(host._read_small(f"/proc/{pid}/stat"),
                                     host._readlink(f"/proc/{pid}/cwd"))
    if not _alive(stat):
        return None
    if len(name) > COMM_LEN:
        # pgrep saw only the first 15 characters: confirm with argv[0].
        cmdline = await host._read_small(f"/proc/{pid}/cmdline") or b""
        argv0 = cmdline.split(b"\0", 1)[0].decode(errors="surrogateescape")
        if posixpath.basename(argv0) != name:
            return None
    ports = await _ports(host, pid, listening) if listening is not None else frozenset()
    return ProcessInfo(pid, cwd, ports)


async def find_processes(host: RemoteHost, name: str, *, port: int | None = None,
                         workdir: str | None = None) -> list[ProcessInfo]:
    """Processes named exactly ``name`` on ``host``, narrowed by port and working directory."""
    pids = await _pgrep(host, name)
    if not pids:
        return []
    listening = None
    if port is not None:
        tables = await asyncio.gather(host._read_small("/proc/net/tcp"),
                                      host._read_small("/proc/net/tcp6"))
        listening = parse_listening(b"".join(t or b"" for t in tables).decode("ascii", "replace"))
    found = await asyncio.gather(*(_inspect(host, pid, name, listening) for pid in pids))
    matches = [p for p in found if p is not None]
    if port is not None:
        matches = [p for p in matches if port in p.ports]
    if workdir is not None:
        want = await host._realpath(workdir)
        matches = [p for p in matches if p.cwd and posixpath.normpath(p.cwd) == want]
    return sorted(matches, key=lambda p: p.pid)
