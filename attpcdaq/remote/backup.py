"""Configuration backups: copy files of a host's directory into a directory on this machine.

Each copy lands under a hidden temporary name in the run's backup directory
and is renamed into place only when complete, so an interrupted backup never
leaves a truncated file that looks like a backup. A second call finds the
same contents and leaves them alone.
"""

from __future__ import annotations

import asyncio
import filecmp
import os
import posixpath
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .exceptions import FilingConflict, RemoteFileNotFound
from .results import BackupResult, FileInfo

if TYPE_CHECKING:
    from .base import RemoteHost

__all__ = ["backup_files"]

#: Backups are for everyone on shift to read, whatever the temporary file's mode.
BACKUP_MODE = 0o644


async def _check_sources(host: RemoteHost, config_dir: str, names: list[str]) -> None:
    """Fail before writing anything when a file to back up is missing."""
    present = {e.name for e in await host._entries(config_dir) if e.regular}
    missing = [n for n in names if n not in present]
    if missing:
        paths = ", ".join(repr(posixpath.join(config_dir, n)) for n in missing)
        raise RemoteFileNotFound(host.name, posixpath.join(config_dir, missing[0]),
                                 f"no such file to back up ({paths}); nothing was written")


def _settle(target: Path, temps: dict[str, Path]) -> tuple[list[str], list[str]]:
    """Sort the fetched copies into new ones and unchanged ones; refuse a differing backup."""
    copied, unchanged, differing = [], [], []
    for name, tmp in temps.items():
        final = target / name
        if not final.exists():
            copied.append(name)
        elif final.is_file() and filecmp.cmp(tmp, final, shallow=False):
            unchanged.append(name)
        else:
            differing.append(name)
    if differing:
        raise FilingConflict("localhost", str(target), "an earlier backup of this run holds "
                             f"other contents for {', '.join(map(repr, differing))}; "
                             "nothing was replaced")
    for name in copied:
        os.chmod(temps[name], BACKUP_MODE)
        os.replace(temps[name], target / name)
    return copied, unchanged


def _make_temps(target: Path, names: list[str]) -> dict[str, Path]:
    """Create the backup directory and a hidden temporary file per name in it."""
    target.mkdir(parents=True, exist_ok=True)
    temps = {}
    for name in names:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=target)
        os.close(fd)
        temps[name] = Path(tmp)
    return temps


async def backup_files(host: RemoteHost, config_dir: str, names: list[str],
                       target: Path) -> BackupResult:
    """Copy ``names`` of ``config_dir`` on ``host`` into the local ``target`` directory."""
    await _check_sources(host, config_dir, names)
    temps = await asyncio.to_thread(_make_temps, target, names)
    try:
        async with asyncio.TaskGroup() as group:
            for name, tmp in temps.items():
                group.create_task(host._fetch(posixpath.join(config_dir, name), tmp))
        copied, unchanged = await asyncio.to_thread(_settle, target, temps)
    except ExceptionGroup as group_error:
        # TaskGroup wraps failures; the first one says what went wrong.
        raise group_error.exceptions[0] from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)

    def infos(chosen: list[str]) -> tuple[FileInfo, ...]:
        return tuple(sorted(FileInfo(n, (target / n).stat().st_size) for n in chosen))

    return BackupResult(str(target), infos(copied), infos(unchanged))
