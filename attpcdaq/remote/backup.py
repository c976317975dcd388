"""Configuration backups: copy files of a host's directory into a directory on this machine.

Each copy lands under a hidden temporary name in the run's backup directory
and is renamed into place only when complete, so an interrupted backup never
leaves a truncated file that looks like a backup. A second call finds the
same contents and leaves them alone.

Which files: a configuration set makes the server read a file per stem
(``describe-cobo0``, ``configure-experiment``: see ``ConfigId.file_stems``),
``STEM.xcfg`` when it exists, else ``STEM.xml``; :func:`choose_config_files`
picks them. :func:`config_digests` hashes files of a directory the way the
engine compares them with the text a server says it loaded.
"""

from __future__ import annotations

import asyncio
import filecmp
import hashlib
import os
import posixpath
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .exceptions import FilingConflict, RemoteFileError, RemoteFileNotFound
from .names import check_component
from .results import BackupResult, FileInfo

if TYPE_CHECKING:
    from .base import RemoteHost

__all__ = ["CONFIG_SUFFIXES", "backup_files", "choose_config_files", "config_digests",
           "text_digest"]

#: Backups are for everyone on shift to read, whatever the temporary file's mode.
BACKUP_MODE = 0o644
#: A configuration file is ``STEM.xcfg``, else ``STEM.xml`` (GET-PROTOCOL.md, configID).
CONFIG_SUFFIXES = (".xcfg", ".xml")
#: Read in pieces of this size when hashing (SFTP answers at most 256 KiB a read).
_HASH_CHUNK = 256 * 1024
#: Larger configuration files than this are not read whole to be hashed.
MAX_CONFIG_BYTES = 256 * 1024 * 1024


async def choose_config_files(host: RemoteHost, config_dir: str, stems: Sequence[str], *,
                              timeout: float | None = None) -> list[str]:
    """The file each stem stands for in ``config_dir``: ``STEM.xcfg``, else ``STEM.xml``.

    Parameters
    ----------
    host
        The machine of the ECC server.
    config_dir
        Its configuration directory.
    stems
        File names without suffix, e.g. ``describe-cobo0`` (repeats are dropped).
    timeout
        Seconds before giving up; the host's default when None.

    Returns
    -------
    list of str
        One file name per distinct stem, in the stems' order.

    Raises
    ------
    UnsafeName
        When a stem could leave the directory or read as an option.
    RemoteFileNotFound
        When a stem has neither file; the message names every such stem and both
        names tried.
    RemoteError
        When the host cannot be reached.
    """
    wanted = list(dict.fromkeys(check_component(host.name, "configuration file name", s)
                                for s in stems))
    async with host._operation(f"looking for configuration files in {config_dir!r}", timeout):
        present = {e.name for e in await host._entries(config_dir) if e.regular}
    chosen, missing = [], []
    for stem in wanted:
        found = next((stem + suffix for suffix in CONFIG_SUFFIXES
                      if stem + suffix in present), None)
        if found is None:
            missing.append(f"no configuration file {stem} (neither "
                           + " nor ".join(stem + suffix for suffix in CONFIG_SUFFIXES)
                           + " is there)")
        else:
            chosen.append(found)
    if missing:
        raise RemoteFileNotFound(host.name, config_dir, "; ".join(missing))
    return chosen


def text_digest(data: bytes | str) -> str:
    """SHA-256 of a configuration file's text, as a server's ConfigSet would hold it.

    The text is taken as UTF-8 (bytes that are not UTF-8: as Latin-1) with line
    ends as an XML parser reads them (CRLF and CR become LF), so a file and the
    text the server sent back of it hash alike. For a UTF-8 file with LF line
    ends this is ``sha256sum`` of the file.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            data = data.decode("latin-1")
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


async def _read_whole(host: RemoteHost, path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        async with host._reader(path) as (size, read_at):
            if size > MAX_CONFIG_BYTES:
                raise RemoteFileError(host.name, path, f"{size} bytes: too large for a "
                                      "configuration file")
            parts, offset = [], 0
            while chunk := await read_at(offset, _HASH_CHUNK):
                parts.append(chunk)
                offset += len(chunk)
                if offset > MAX_CONFIG_BYTES:
                    raise RemoteFileError(host.name, path, "grew past "
                                          f"{MAX_CONFIG_BYTES} bytes while read")
            return b"".join(parts)
    except RemoteFileNotFound:
        return None


async def config_digests(host: RemoteHost, config_dir: str, names: Sequence[str], *,
                         timeout: float | None = None) -> dict[str, str | None]:
    """The :func:`text_digest` of each file ``names`` of ``config_dir``; None when missing.

    Files are read through the transport (SFTP over SSH), never by a shell.

    Raises
    ------
    UnsafeName
        When a name could leave the directory or read as an option.
    RemoteFileNotFound
        When ``config_dir`` does not exist.
    RemoteFileError
        When a file exists but cannot be read (permissions, too large).
    RemoteError
        When the host cannot be reached.
    """
    checked = [check_component(host.name, "configuration file name", n) for n in names]
    digests: dict[str, str | None] = {}
    async with host._operation(f"hashing configuration files in {config_dir!r}", timeout):
        present = {e.name for e in await host._entries(config_dir) if e.regular}
        for name in dict.fromkeys(checked):
            data = (await _read_whole(host, posixpath.join(config_dir, name))
                    if name in present else None)
            digests[name] = None if data is None else text_digest(data)
    return digests


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
