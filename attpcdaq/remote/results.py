"""What the remote operations answer: plain frozen dataclasses, easy to store and compare."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackupResult", "FileInfo", "FilingResult", "ProcessInfo"]


@dataclass(frozen=True, slots=True, order=True)
class FileInfo:
    """A regular file: its name (no directory) and its size in bytes."""

    name: str
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry as a transport lists it (internal): regular file or not."""

    name: str
    size: int
    regular: bool

    def info(self) -> FileInfo:
        """Return the entry as a :class:`FileInfo`."""
        return FileInfo(self.name, self.size)


@dataclass(frozen=True, slots=True)
class FilingResult:
    """The outcome of :meth:`RemoteHost.file_run`.

    ``moved`` went from the working directory into ``destination`` during this
    call; ``already_there`` were in ``destination`` before it (moved by an
    earlier, maybe interrupted, call); ``duplicates_removed`` were in both
    places with identical contents, so the working directory's copy was deleted
    (they are also in ``already_there``). ``files`` is what the run directory
    now holds of the pattern: compare its count and bytes with a listing taken
    before the run was filed.
    """

    directory: str
    destination: str
    moved: tuple[FileInfo, ...]
    already_there: tuple[FileInfo, ...]
    duplicates_removed: tuple[FileInfo, ...] = ()

    @property
    def files(self) -> tuple[FileInfo, ...]:
        """Every file of the run in the destination, sorted by name."""
        return tuple(sorted(self.moved + self.already_there))

    @property
    def total_bytes(self) -> int:
        """The bytes of every file of the run in the destination."""
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class BackupResult:
    """The outcome of :meth:`RemoteHost.backup_configs`: where the copies are, and what."""

    destination: str
    copied: tuple[FileInfo, ...]
    unchanged: tuple[FileInfo, ...] = ()

    @property
    def files(self) -> tuple[FileInfo, ...]:
        """Every backed-up file, sorted by name."""
        return tuple(sorted(self.copied + self.unchanged))


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A running process: its PID, working directory and listening TCP ports.

    ``cwd`` is None when it cannot be read (another user's process, or it just
    exited). ``ports`` is empty unless the query asked for ports.
    """

    pid: int
    cwd: str | None
    ports: frozenset[int] = frozenset()
