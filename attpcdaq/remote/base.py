"""The interface every transport offers, and the operations written once on its primitives.

A transport (:class:`~attpcdaq.remote.local.LocalHost`,
:class:`~attpcdaq.remote.ssh.SshHost`) supplies a handful of primitives: run a
command without a shell, list a directory with sizes, read a small file,
readlink, read a file at offsets, fetch a file to this machine. The public
operations below are built on them, so both transports check, plan and file
the same way, and the same tests run through both.
"""

from __future__ import annotations

import asyncio
import fnmatch
import posixpath
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from .backup import backup_files
from .exceptions import AmbiguousProcess, RemoteError, RemoteFileNotFound, RemoteTimeout
from .filing import filing_result, filing_script, plan_filing, script_error, unmoved
from .names import check_component, check_process_name, run_dir, run_dir_name
from .procs import find_processes
from .results import BackupResult, Entry, FileInfo, FilingResult, ProcessInfo
from .tailing import tail_bytes

__all__ = ["DEFAULT_FILING_TIMEOUT", "DEFAULT_TIMEOUT", "RemoteHost", "RunResult", "Stdin"]

#: Checks and small reads answer within a second on a healthy LAN host.
DEFAULT_TIMEOUT = 30.0
#: Filing touches every file of a run (tens of thousands at most): allow longer.
DEFAULT_FILING_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished command: exit status (None if killed by a signal) and its output."""

    exit_status: int | None
    stdout: bytes
    stderr: bytes


ReadAt = Callable[[int, int], Awaitable[bytes]]
Stdin = bytes | Awaitable[bytes] | None


class RemoteHost(ABC):
    """Operations on one DAQ computer; every one has a timeout and raises RemoteError.

    Parameters
    ----------
    name
        How messages name the host (its address, usually).
    timeout
        The default timeout of each operation, in seconds.
    """

    def __init__(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.name = name
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # ----------------------------------------------------------- processes

    async def processes(self, name: str, *, port: int | None = None,
                        workdir: str | None = None,
                        timeout: float | None = None) -> list[ProcessInfo]:
        """List the running processes named exactly ``name``.

        Parameters
        ----------
        name
            The program's name, e.g. ``dataRouter`` or ``getEccSoapServer``.
        port
            Keep only processes listening on this TCP port.
        workdir
            Keep only processes whose working directory is this one.
        timeout
            Seconds before giving up; the host's default when None.

        Returns
        -------
        list of ProcessInfo
            The matches, by PID; empty when none runs.

        Raises
        ------
        UnsafeName
            When ``name`` is empty, contains ``/`` or starts with ``-``.
        RemoteError
            When the host cannot be asked (see the exception tree).
        """
        check_process_name(self.name, name)
        async with self._operation(f"looking for process {name!r}", timeout):
            return await find_processes(self, name, port=port, workdir=workdir)

    async def process_running(self, name: str, *, port: int | None = None,
                              workdir: str | None = None, timeout: float | None = None) -> bool:
        """Tell whether a process named exactly ``name`` runs (on ``port``, in ``workdir``).

        Parameters and Raises are those of :meth:`processes`.
        """
        return bool(await self.processes(name, port=port, workdir=workdir, timeout=timeout))

    async def find_workdir(self, name: str, port: int | None = None, *,
                           timeout: float | None = None) -> str | None:
        """Return the working directory of the one running process ``name`` (on ``port``).

        Returns
        -------
        str or None
            The directory; None when no such process runs.

        Raises
        ------
        AmbiguousProcess
            When processes in different directories match: give the port.
        RemoteError
            As :meth:`processes`; also when the directory cannot be read.
        """
        found = await self.processes(name, port=port, timeout=timeout)
        cwds = {p.cwd for p in found}
        if not found:
            return None
        if len(cwds) > 1 or None in cwds:
            pids = ", ".join(f"{p.pid} in {p.cwd or '(unreadable)'}" for p in found)
            raise AmbiguousProcess(self.name, f"cannot tell the working directory of {name!r}"
                                   f"{'' if port is None else f' on port {port}'}: {pids}")
        return cwds.pop()

    # --------------------------------------------------------------- files

    async def list_files(self, directory: str, pattern: str = "*.graw", *,
                         timeout: float | None = None) -> list[FileInfo]:
        """List the regular files of ``directory`` (not its subdirectories) matching ``pattern``.

        Parameters
        ----------
        directory
            The directory on the host.
        pattern
            A shell-style pattern matched against each name (never given to a shell).
        timeout
            Seconds before giving up; the host's default when None.

        Returns
        -------
        list of FileInfo
            Name and size of each file, sorted by name.

        Raises
        ------
        RemoteFileNotFound
            When the directory does not exist.
        RemoteError
            When the host cannot be asked.
        """
        async with self._operation(f"listing {directory!r}", timeout):
            entries = await self._entries(directory)
        return sorted(e.info() for e in entries
                      if e.regular and fnmatch.fnmatchcase(e.name, pattern))

    async def file_run(self, directory: str, experiment: str, run_number: int | None,
                       pattern: str = "*.graw", *,
                       timeout: float | None = DEFAULT_FILING_TIMEOUT,
                       folder: tuple[str, ...] = ()) -> FilingResult:
        """Move the run's files of ``directory`` into ``<directory>/<experiment>/run_NNNN/``.

        With ``folder``, into ``<directory>/<experiment>/<folder...>/`` instead (data
        set aside because it belongs to no run); ``run_number`` is then not used.

        Idempotent and crash-safe: calling again after an interrupted call
        finishes the job, every file exactly once, sizes unchanged. A file
        already in the run directory with the same size and contents is not
        duplicated (the working directory's copy is deleted).

        Parameters
        ----------
        directory
            The data router's working directory.
        experiment
            The experiment's name: any text but ``.``/``..``, ``/``, NUL,
            control characters or a leading ``-``.
        run_number
            The run number (``run_0007`` for 7).
        pattern
            Which files belong to the run.
        timeout
            Seconds before giving up (a second call resumes the job).

        Returns
        -------
        FilingResult
            What moved, what was already there, and what the run directory holds.

        Raises
        ------
        UnsafeName
            When the experiment name or run number is refused; nothing is touched.
        FilingConflict
            When the run directory holds another file of the same name; nothing moves.
        RemoteFileNotFound
            When ``directory`` does not exist.
        RemoteError
            When the host cannot be reached or the move fails.
        """
        relative, destination = run_dir(self.name, directory, experiment, run_number, folder)
        async with self._operation(f"filing {directory!r} into {relative!r}", timeout):
            script: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            # Start the shell now: its start (a login shell reading .bashrc, over SSH)
            # overlaps the listing. It waits for the script on its standard input.
            shell = asyncio.create_task(self._run(["sh", "-s"], script))
            try:
                sources, existing = await asyncio.gather(self._entries(directory),
                                                         self._entries_or_none(destination))
                plan = plan_filing(self.name, directory, relative, sources, existing or [],
                                   pattern)
                work = plan.to_move or plan.duplicates
                script.set_result(filing_script(plan).encode(errors="surrogateescape")
                                  if work else b"")
                done = await shell
            finally:
                await _abandon(script, shell)
            if done.exit_status != 0:
                raise script_error(self.name, plan, done.exit_status, done.stderr)
            if (left_behind := unmoved(self.name, plan, done.stderr)) is not None:
                raise left_behind
        return filing_result(plan)

    async def backup_configs(self, config_dir: str, filenames: Sequence[str], backup_root: str,
                             experiment: str, run_number: int, *,
                             timeout: float | None = None) -> BackupResult:
        """Copy ``filenames`` of ``config_dir`` on this host to a directory on this machine.

        The copies go to ``<backup_root>/<experiment>/run_NNNN/`` on the
        machine running this code, whatever the host. Idempotent: a backup
        already there with the same contents is left alone.

        Parameters
        ----------
        config_dir
            The ECC server's configuration directory on the host.
        filenames
            The file names to copy, e.g. ``describe-cobo0.xcfg``.
        backup_root
            The local backup directory.
        experiment, run_number
            Name the run's backup directory, as for :meth:`file_run`.
        timeout
            Seconds before giving up; the host's default when None.

        Returns
        -------
        BackupResult
            Where the copies are, which were copied and which were already there.

        Raises
        ------
        UnsafeName
            When a name or the run number is refused; nothing is touched.
        RemoteFileNotFound
            When a file is missing; the message names it and nothing is written.
        FilingConflict
            When an earlier backup of this run holds other contents.
        RemoteError
            When the host cannot be reached.
        """
        names = [check_component(self.name, "file name", n) for n in filenames]
        target = Path(backup_root, check_component(self.name, "experiment name", experiment),
                      run_dir_name(self.name, run_number))
        async with self._operation(f"backing up {config_dir!r}", timeout):
            return await backup_files(self, config_dir, names, target)

    async def tail(self, path: str, lines: int = 50, *, timeout: float | None = None) -> str:
        """Return the last ``lines`` lines of a text file, reading blocks from its end.

        Parameters
        ----------
        path
            The file (a log) on the host.
        lines
            How many lines.
        timeout
            Seconds before giving up; the host's default when None.

        Returns
        -------
        str
            The lines, decoded as UTF-8 (undecodable bytes replaced).

        Raises
        ------
        RemoteFileNotFound
            When the file does not exist.
        RemoteError
            When the host cannot be reached.
        """
        async with (self._operation(f"reading the end of {path!r}", timeout),
                    self._reader(path) as (size, read_at)):
            data = await tail_bytes(read_at, size, lines)
        return data.decode("utf-8", errors="replace")

    async def close(self) -> None:  # noqa: B027 - a hook: nothing to release locally
        """Release the transport's resources (the SSH connection)."""

    async def __aenter__(self) -> RemoteHost:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---------------------------------------------------------- machinery

    @asynccontextmanager
    async def _operation(self, what: str, timeout: float | None) -> AsyncIterator[None]:
        """Bound the body by ``timeout`` and turn every failure into a RemoteError."""
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                yield
        except RemoteError:
            raise
        except TimeoutError as exc:
            await self._after_timeout()
            raise RemoteTimeout(self.name, f"{what}: no answer within {limit:g} s") from exc
        except Exception as exc:
            mapped = self._map_error(exc, what)
            if mapped is None:
                raise
            raise mapped from exc

    async def _entries_or_none(self, directory: str) -> list[Entry] | None:
        """List ``directory``, or None when it does not exist."""
        try:
            return await self._entries(directory)
        except RemoteFileNotFound:
            return None

    async def _realpath(self, path: str) -> str:
        """``path`` with symbolic links resolved, normalized; just normalized if unresolvable."""
        return posixpath.normpath(path)

    async def _after_timeout(self) -> None:  # noqa: B027 - a hook for transports
        """Drop whatever a timed-out operation may have left in a bad state."""

    def _map_error(self, exc: BaseException, what: str) -> RemoteError | None:
        """The RemoteError for a transport exception, or None to let it through."""
        return None

    # ------------------------------------------------- transport primitives

    @abstractmethod
    async def _run(self, argv: Sequence[str], stdin: Stdin = None) -> RunResult:
        """Run ``argv`` (no shell locally; each word quoted remotely); never raise on status.

        ``stdin`` is the input, or a future of it: the command starts at once and
        gets its input when the future is set.
        """

    @abstractmethod
    async def _entries(self, directory: str) -> list[Entry]:
        """List ``directory`` without following links; RemoteFileNotFound when missing."""

    @abstractmethod
    async def _read_small(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """Read a small file (a /proc file) whole, or None if it is gone or unreadable."""

    @abstractmethod
    async def _readlink(self, path: str) -> str | None:
        """A symbolic link's target, or None if it is gone or unreadable."""

    @abstractmethod
    async def _listdir(self, path: str) -> list[str] | None:
        """The names in a directory, or None if it is gone or unreadable."""

    @abstractmethod
    def _reader(self, path: str) -> AbstractAsyncContextManager[tuple[int, ReadAt]]:
        """Open ``path`` for reading: yield its size and ``read_at(offset, size)``."""

    @abstractmethod
    async def _fetch(self, path: str, local_path: Path) -> None:
        """Copy the host's file ``path`` to ``local_path`` on this machine."""


async def _abandon(script: asyncio.Future[bytes], shell: asyncio.Task[RunResult]) -> None:
    """Stop a shell that never got its script: an empty script runs nothing."""
    if not script.done():
        script.set_result(b"")
    if not shell.done():
        shell.cancel()
        await asyncio.gather(shell, return_exceptions=True)
