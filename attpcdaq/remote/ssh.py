"""The SSH transport: one asyncssh connection per host, reused, reopened when it dropped.

Host keys are always checked: by default against ``~/.ssh/known_hosts`` (or
what ``~/.ssh/config`` names), with ``~/.ssh/config``, the default keys and
the agent, like the ``ssh`` command. An unknown host key is an error, never
trusted on first use. Files are read, listed and fetched over one SFTP
session per connection; commands get their own channel, at most
``max_sessions`` at a time (OpenSSH allows 10 per connection by default).
"""

from __future__ import annotations

import asyncio
import posixpath
import shlex
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.constants import FILEXFER_TYPE_REGULAR

from .base import DEFAULT_TIMEOUT, ReadAt, RemoteHost, RunResult, Stdin
from .exceptions import (
    HostUnreachable,
    RemoteError,
    RemoteFileError,
    RemoteFileNotFound,
    RemoteTimeout,
)
from .results import Entry

__all__ = ["SshHost", "SshOptions"]

_READ_CHUNK = 32 * 1024


@dataclass(frozen=True, slots=True)
class SshOptions:
    """How to reach hosts over SSH; anything left empty comes from ~/.ssh like ``ssh`` does.

    ``known_hosts``, ``client_keys`` and ``config`` are file paths; an empty
    tuple means the default. These options cannot switch host key checking
    off (only an SSH config saying ``UserKnownHostsFile none`` would).
    """

    username: str | None = None
    port: int | None = None
    known_hosts: tuple[str, ...] = ()
    client_keys: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    use_agent: bool = True
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    #: Command channels at once; the SFTP session takes one more (OpenSSH allows 10).
    max_sessions: int = 8

    def connect_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`asyncssh.connect` these options stand for."""
        kwargs: dict[str, Any] = {"connect_timeout": self.connect_timeout,
                                  "keepalive_interval": self.keepalive_interval,
                                  "keepalive_count_max": 3}
        for key in ("username", "port"):
            if getattr(self, key):
                kwargs[key] = getattr(self, key)
        for key in ("known_hosts", "client_keys", "config"):
            if getattr(self, key):
                kwargs[key] = [str(p) for p in getattr(self, key)]
        if not self.use_agent:
            kwargs["agent_path"] = None
        return kwargs


class SshHost(RemoteHost):
    """A DAQ computer reached over SSH, with one connection reused by every operation.

    Parameters
    ----------
    address
        Host name or address, or a ``Host`` alias of the SSH config.
    options
        How to connect (user, port, known_hosts, keys, config files).
    timeout
        The default timeout of each operation, in seconds.
    """

    def __init__(self, address: str, options: SshOptions | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.options = options or SshOptions()
        port = self.options.port
        super().__init__(address if port is None else f"{address}:{port}", timeout=timeout)
        self.address = address
        #: How many connections were opened: 1 while the first one lives.
        self.connects = 0
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._sftp_lock = asyncio.Lock()
        self._sessions = asyncio.Semaphore(self.options.max_sessions)

    async def connection(self) -> asyncssh.SSHClientConnection:
        """Return the host's connection, opening it (again) if there is none or it closed.

        Raises
        ------
        HostUnreachable
            When the connection is refused, the host key is not known or the login fails.
        RemoteTimeout
            When the host does not answer within the connect timeout.
        """
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._sftp = None
                self._conn = await self._connect()
                self.connects += 1
            return self._conn

    async def _connect(self) -> asyncssh.SSHClientConnection:
        """Open a new connection, every failure turned into a RemoteError naming the host."""
        kwargs = self.options.connect_kwargs()
        try:
            return await asyncssh.connect(self.address, **kwargs)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostUnreachable(self.name, "host key not verifiable against known_hosts "
                                  f"(not trusted on first use): {exc.reason}") from exc
        except asyncssh.PermissionDenied as exc:
            raise HostUnreachable(self.name, f"login refused: {exc.reason}") from exc
        except asyncssh.Error as exc:
            raise HostUnreachable(self.name, f"SSH failed: {exc.reason}") from exc
        except TimeoutError as exc:
            raise RemoteTimeout(self.name, "no SSH answer within "
                                f"{self.options.connect_timeout:g} s") from exc
        except OSError as exc:
            raise HostUnreachable(self.name, f"cannot connect: {exc.strerror or exc}") from exc

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        """The connection's SFTP session, started on first use."""
        conn = await self.connection()
        async with self._sftp_lock:  # one session, however many tasks ask at once
            if self._sftp is None or self._sftp_conn is not conn:
                # Undecodable file names come back as surrogates and go out unchanged.
                self._sftp = await conn.start_sftp_client(path_errors="surrogateescape")
                self._sftp_conn = conn
            return self._sftp

    @contextmanager
    def _file_errors(self, path: str) -> Iterator[None]:
        """Turn an SFTP status about ``path`` into a RemoteFileError naming it."""
        try:
            yield
        except asyncssh.SFTPConnectionLost:
            raise  # not about the file: _map_error makes it HostUnreachable
        except asyncssh.SFTPNoSuchFile as exc:
            raise RemoteFileNotFound(self.name, path, exc.reason or "no such file") from exc
        except asyncssh.SFTPError as exc:
            raise RemoteFileError(self.name, path, exc.reason) from exc

    async def _run(self, argv: Sequence[str], stdin: Stdin = None) -> RunResult:
        conn = await self.connection()
        # `async with` closes the channel if the caller's timeout cancels us.
        async with (self._sessions,
                    await conn.create_process(shlex.join(argv), encoding=None) as process):
            data = stdin if stdin is None or isinstance(stdin, bytes) else await stdin
            if data:
                process.stdin.write(data)
            process.stdin.write_eof()
            done = await process.wait()
        status = done.exit_status
        return RunResult(status if status is not None and status >= 0 else None,
                         done.stdout or b"", done.stderr or b"")

    async def _entries(self, directory: str) -> list[Entry]:
        # One round trip per 100 names; `find -printf` would be one in all but costs
        # an exec (a login shell: 75 ms with a heavy .bashrc) and is GNU-only.
        sftp = await self._sftp_client()
        with self._file_errors(directory):
            names = await sftp.readdir(directory)
        return [Entry(n.filename, n.attrs.size or 0, n.attrs.type == FILEXFER_TYPE_REGULAR)
                for n in names if n.filename not in (".", "..")]

    async def _read_small(self, path: str, limit: int = 1 << 20) -> bytes | None:
        sftp = await self._sftp_client()
        try:
            async with await sftp.open(path, "rb") as handle:
                # /proc files report size 0: read until an empty answer, not to the size.
                parts: list[bytes] = []
                offset = 0
                while offset < limit:
                    chunk = await handle.read(_READ_CHUNK, offset)
                    if not chunk:
                        break
                    parts.append(chunk)
                    offset += len(chunk)
                return b"".join(parts)
        except asyncssh.SFTPConnectionLost:
            raise
        except asyncssh.SFTPError:
            return None

    async def _readlink(self, path: str) -> str | None:
        sftp = await self._sftp_client()
        try:
            return await sftp.readlink(path)
        except asyncssh.SFTPConnectionLost:
            raise
        except asyncssh.SFTPError:
            return None

    async def _listdir(self, path: str) -> list[str] | None:
        sftp = await self._sftp_client()
        try:
            return [n for n in await sftp.listdir(path) if n not in (".", "..")]
        except asyncssh.SFTPConnectionLost:
            raise
        except asyncssh.SFTPError:
            return None

    async def _realpath(self, path: str) -> str:
        sftp = await self._sftp_client()
        try:
            return posixpath.normpath(await sftp.realpath(path))
        except asyncssh.SFTPConnectionLost:
            raise
        except asyncssh.SFTPError:
            return posixpath.normpath(path)

    @asynccontextmanager
    async def _reader(self, path: str) -> AsyncIterator[tuple[int, ReadAt]]:
        sftp = await self._sftp_client()
        with self._file_errors(path):
            handle = await sftp.open(path, "rb")
        try:
            with self._file_errors(path):
                size = (await handle.stat()).size or 0

            async def read_at(offset: int, length: int) -> bytes:
                with self._file_errors(path):
                    return await handle.read(length, offset)

            yield size, read_at
        finally:
            await handle.close()

    async def _fetch(self, path: str, local_path: Path) -> None:
        sftp = await self._sftp_client()
        with self._file_errors(path):
            await sftp.get(path, local_path)

    async def _after_timeout(self) -> None:
        # The SFTP server answers in order: a request stuck on the host (a FIFO,
        # a hung NFS mount) would block every later one. Start afresh next time.
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None

    def _map_error(self, exc: BaseException, what: str) -> RemoteError | None:
        if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.ConnectionLost
                      | asyncssh.DisconnectError | BrokenPipeError | ConnectionError):
            self._sftp = None
            return HostUnreachable(self.name, f"{what}: connection lost")
        if isinstance(exc, asyncssh.ChannelOpenError):
            return HostUnreachable(self.name, f"{what}: the server refused a channel: "
                                   f"{exc.reason}")
        if isinstance(exc, asyncssh.SFTPError):
            return RemoteFileError(self.name, what, exc.reason)
        if isinstance(exc, OSError):
            return HostUnreachable(self.name, f"{what}: {exc.strerror or exc}")
        return None

    async def close(self) -> None:
        """Close the SFTP session and the connection; a later operation reconnects."""
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None
