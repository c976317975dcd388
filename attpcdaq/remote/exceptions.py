"""Errors of the remote-operations layer.

Catch at the level you care about::

    RemoteError               anything that went wrong on one host (has .host, .detail)
    ├── UnsafeName            a name or number refused before anything was touched (ValueError)
    ├── HostUnreachable       refused, reset, unknown host, host key or login refused
    ├── RemoteTimeout         no answer within the operation's timeout (connecting included)
    ├── RemoteCommandError    a command exited with an unexpected status (has .exit_status)
    ├── RemoteFileError       a file operation failed (has .path)
    │   ├── RemoteFileNotFound  the file or directory does not exist
    │   └── FilingConflict    a destination file differs from the one to file there
    └── AmbiguousProcess      several processes match where the caller expected one

Every message names the host and the path or the operation.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousProcess",
    "FilingConflict",
    "HostUnreachable",
    "RemoteCommandError",
    "RemoteError",
    "RemoteFileError",
    "RemoteFileNotFound",
    "RemoteTimeout",
    "UnsafeName",
]


class RemoteError(Exception):
    """Base of every error raised by :mod:`attpcdaq.remote`; the message names the host."""

    def __init__(self, host: str, detail: str) -> None:
        self.host = host
        self.detail = detail
        super().__init__(f"host {host}: {detail}")


class UnsafeName(RemoteError, ValueError):
    """A name that could escape its directory or be read as an option; nothing was changed."""


class HostUnreachable(RemoteError):
    """The host refused or dropped the connection, is unknown, or refused our keys."""


class RemoteTimeout(RemoteError):
    """The operation (connecting included) did not finish within its timeout."""


class RemoteCommandError(RemoteError):
    """A remote command exited with a status that means failure."""

    def __init__(self, host: str, detail: str, exit_status: int | None, stderr: str = "") -> None:
        self.exit_status = exit_status
        self.stderr = stderr
        tail = f": {stderr.strip()}" if stderr.strip() else ""
        super().__init__(host, f"{detail} (exit status {exit_status}){tail}")


class RemoteFileError(RemoteError):
    """A file operation failed; ``path`` is the file or directory concerned."""

    def __init__(self, host: str, path: str, detail: str) -> None:
        self.path = path
        super().__init__(host, f"{path}: {detail}")


class RemoteFileNotFound(RemoteFileError):
    """The file or directory does not exist."""


class FilingConflict(RemoteFileError):
    """A file of that name is already in the destination with other contents."""


class AmbiguousProcess(RemoteError):
    """Several running processes match; narrow the query (port or working directory)."""
