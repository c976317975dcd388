"""Operations on the DAQ computers, over SSH or locally: pure asyncio, no Django here.

Get a host from a :class:`HostPool` (one reused SSH connection per host, a
:class:`LocalHost` for this machine) and ask it: is a data router running
(:meth:`~RemoteHost.process_running`), which files wait in its directory
(:meth:`~RemoteHost.list_files`), file a run (:meth:`~RemoteHost.file_run`),
back up configurations (:meth:`~RemoteHost.backup_configs`), the end of a log
(:meth:`~RemoteHost.tail`). Every operation has a timeout and fails with a
:class:`RemoteError` naming the host (see :mod:`.exceptions` for the tree).
"""

from .base import DEFAULT_FILING_TIMEOUT, DEFAULT_TIMEOUT, RemoteHost
from .exceptions import (
    AmbiguousProcess,
    FilingConflict,
    HostUnreachable,
    RemoteCommandError,
    RemoteError,
    RemoteFileError,
    RemoteFileNotFound,
    RemoteTimeout,
    UnsafeName,
)
from .local import LocalHost
from .names import check_component, run_dir_name
from .pool import HostPool, is_local_address
from .results import BackupResult, FileInfo, FilingResult, ProcessInfo
from .ssh import SshHost, SshOptions

__all__ = [
    "DEFAULT_FILING_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AmbiguousProcess",
    "BackupResult",
    "FileInfo",
    "FilingConflict",
    "FilingResult",
    "HostPool",
    "HostUnreachable",
    "LocalHost",
    "ProcessInfo",
    "RemoteCommandError",
    "RemoteError",
    "RemoteFileError",
    "RemoteFileNotFound",
    "RemoteHost",
    "RemoteTimeout",
    "SshHost",
    "SshOptions",
    "UnsafeName",
    "check_component",
    "is_local_address",
    "run_dir_name",
]
