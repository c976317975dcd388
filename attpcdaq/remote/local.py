"""The local transport: the DAQ computer is the machine running this code.

Commands run without a shell (``asyncio.create_subprocess_exec``); file work
runs in worker threads so that a slow disk never blocks the event loop. A
thread cannot be interrupted: when an operation times out, its thread may
finish later on its own (the operations are idempotent, so that is harmless).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from .base import DEFAULT_TIMEOUT, ReadAt, RemoteHost, RunResult, Stdin
from .exceptions import RemoteError, RemoteFileError, RemoteFileNotFound
from .results import Entry

__all__ = ["LocalHost"]


def file_error(host: str, path: str, exc: OSError) -> RemoteFileError:
    """The RemoteFileError for an OSError met on ``path``."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return RemoteFileNotFound(host, path, reason)
    return RemoteFileError(host, path, reason)


def _scan(host: str, directory: str) -> list[Entry]:
    """List ``directory`` with sizes, links not followed."""
    entries = []
    try:
        with os.scandir(directory) as listing:
            for item in listing:
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we listed
                entries.append(Entry(item.name, info.st_size, stat.S_ISREG(info.st_mode)))
    except OSError as exc:
        raise file_error(host, directory, exc) from exc
    return entries


def _read_head(path: str, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of ``path``, or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


class LocalHost(RemoteHost):
    """The machine running this code, reached without SSH.

    Parameters
    ----------
    name
        How messages name it.
    timeout
        The default timeout of each operation, in seconds.
    """

    def __init__(self, name: str = "localhost", *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(name, timeout=timeout)

    async def _run(self, argv: Sequence[str], stdin: Stdin = None) -> RunResult:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else
                asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            # What a shell would answer, so both transports look the same.
            return RunResult(127, b"", f"{argv[0]}: command not found".encode())
        try:
            data = stdin if stdin is None or isinstance(stdin, bytes) else await stdin
            out, err = await process.communicate(data)
        except BaseException:
            # Timed out or cancelled: do not leave the child running behind us.
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            raise
        code = process.returncode
        return RunResult(code if code is not None and code >= 0 else None, out, err)

    async def _entries(self, directory: str) -> list[Entry]:
        return await asyncio.to_thread(_scan, self.name, directory)

    async def _read_small(self, path: str, limit: int = 1 << 20) -> bytes | None:
        return await asyncio.to_thread(_read_head, path, limit)

    async def _readlink(self, path: str) -> str | None:
        try:
            return os.readlink(path)
        except OSError:
            return None

    async def _listdir(self, path: str) -> list[str] | None:
        try:
            return os.listdir(path)
        except OSError:
            return None

    async def _realpath(self, path: str) -> str:
        return await asyncio.to_thread(os.path.realpath, path)

    @asynccontextmanager
    async def _reader(self, path: str) -> AsyncIterator[tuple[int, ReadAt]]:
        try:
            fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
        except OSError as exc:
            raise file_error(self.name, path, exc) from exc

        async def read_at(offset: int, size: int) -> bytes:
            return await asyncio.to_thread(os.pread, fd, size, offset)

        try:
            yield os.fstat(fd).st_size, read_at
        finally:
            os.close(fd)

    async def _fetch(self, path: str, local_path: Path) -> None:
        try:
            await asyncio.to_thread(shutil.copyfile, path, local_path)
        except OSError as exc:
            raise file_error(self.name, path, exc) from exc

    def _map_error(self, exc: BaseException, what: str) -> RemoteError | None:
        if isinstance(exc, OSError):
            return file_error(self.name, str(exc.filename or what), exc)
        return None
