"""The configuration the hardware really loaded: recorded at Configure, checked at Start.

Configure answers the data links in use and a ``<ConfigSet>`` holding the full
text of every file the server used. :func:`record_configure_answers` keeps that
per server (``LoadedConfig``, replaced at each successful Configure; the
coordinator drops it when the server goes below Ready or comes back Idle after
a restart). At Start the controller copies it onto the run, and
:func:`check_drift` compares the files on disk (over SSH, or locally) with it by
digest: a file changed, removed, or shadowed by a new ``.xcfg`` since Configure
means the boards run with something other than what the next backup will hold,
so Start is refused, naming the file, unless the operator confirms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

from attpcdaq.daq.models import Command, ECCServer
from attpcdaq.get import ConfigId, Operation, Step, XmlError, parse_configure_answer
from attpcdaq.remote import HostPool, RemoteError, UnsafeName, check_component
from attpcdaq.remote.backup import CONFIG_SUFFIXES, config_digests, text_digest

from .datarouters import host_for

if TYPE_CHECKING:
    from .coordinator import EccCoordinator
    from .database import EngineDatabase

log = logging.getLogger(__name__)

__all__ = ["DRIFT_REFUSAL", "check_drift", "drift_refusal", "loaded_files",
           "record_configure_answers"]

#: How a Start refused for drift begins (the status page offers "Start anyway" after it).
DRIFT_REFUSAL = Command.DRIFT_REFUSAL
_NO_FILES = "Configure's answer held no configuration files"


def loaded_files(text: str) -> tuple[list[dict[str, str]], str]:
    """The files of Configure's answer as stored, and why there are none, if so.

    Returns
    -------
    files, problem
        ``[{"filename", "sha256", "text"}]`` in the answer's order; ``problem`` is
        empty when the answer held files.
    """
    try:
        answer = parse_configure_answer(text or "")
    except XmlError as exc:
        return [], f"Configure's answer could not be read: {exc}"
    files = [{"filename": f.filename, "sha256": text_digest(f.text), "text": f.text}
             for f in answer.files]
    return files, "" if files else _NO_FILES


async def record_configure_answers(db: EngineDatabase, steps: dict[EccCoordinator, Step],
                                   args: dict, results: Sequence[object]) -> None:
    """Store what each server that succeeded in Configure says it loaded.

    ``results`` are the transitions' outcomes in the order of ``steps`` (an
    exception for those that failed); ``args`` gives each server's configuration
    set by primary key, as sent.
    """
    for coord, result in zip(steps, results, strict=True):
        if steps[coord].operation != Operation.CONFIGURE or isinstance(result, BaseException):
            continue
        files, problem = loaded_files(getattr(result, "text", "") or "")
        if problem and problem != _NO_FILES:
            await db.event("warning", coord.name, problem)
        config = args[coord.info.pk][0]
        await db.store_loaded_config(coord.info.pk, str(config) if config else "", files,
                                     problem)


@dataclass(frozen=True)
class _Server:
    """What the drift check needs of one server and what it loaded."""

    name: str
    ssh_host: str
    ip_address: str
    config_dir: str
    selected: str
    loaded: str | None  # None: nothing recorded
    configured_at: datetime | None
    files: tuple[tuple[str, str], ...]  # (filename, sha256)


def _servers(pks: list[int]) -> list[_Server]:
    from attpcdaq.daq.models import LoadedConfig

    loaded = {row.ecc_server_id: row for row in LoadedConfig.objects.filter(
        ecc_server_id__in=pks)}
    found = []
    for server in ECCServer.objects.select_related("selected_config").filter(pk__in=pks):
        row = loaded.get(server.pk)
        found.append(_Server(
            server.name, server.ssh_host, server.ip_address, server.config_dir,
            str(server.selected_config) if server.selected_config else "",
            row.config if row else None, row.configured_at if row else None,
            tuple((f["filename"], f["sha256"]) for f in row.file_list) if row else ()))
    return sorted(found, key=lambda s: s.name)


def _when(moment: datetime | None) -> str:
    """``21:04`` today, ``2026-03-01 21:04`` another day (local time)."""
    if moment is None:
        return "an unknown time"
    local = timezone.localtime(moment)
    if local.date() == timezone.localtime().date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def _plain(name: str) -> bool:
    try:
        check_component("", "file name", name)
    except UnsafeName:
        return False
    return True


async def _check_server(pool: HostPool, server: _Server) -> list[str]:
    """The sentences saying how one server's files differ from what it loaded."""
    if server.loaded is None:
        return []  # configured outside the engine, or before it kept loaded configurations
    since = f"since {server.name} was configured at {_when(server.configured_at)}"
    if server.loaded and server.selected and server.loaded != server.selected:
        return [f"{server.name} was configured with {server.loaded} at "
                f"{_when(server.configured_at)}, but {server.selected} is selected now: "
                "Configure again"]
    if not server.config_dir or not server.files:
        return []  # nothing on disk to look at, or nothing loaded to compare it with
    loaded = dict(server.files)
    try:
        stems = list(dict.fromkeys(ConfigId.parse(server.loaded).file_stems().values()))
    except XmlError:
        stems = []
    candidates = {stem: [stem + suffix for suffix in CONFIG_SUFFIXES] for stem in stems}
    names = [n for names in candidates.values() for n in names]
    names += [n for n in loaded if n not in names and _plain(n)]
    host = host_for(pool, server.ssh_host, server.ip_address)
    try:
        on_disk = await config_digests(host, server.config_dir, names)
    except RemoteError as exc:
        return [f"cannot compare {server.name}'s configuration files with what it loaded: "
                f"{exc}"]
    problems = []
    for pair in candidates.values():
        was = next((n for n in pair if n in loaded), None)
        now = next((n for n in pair if on_disk.get(n) is not None), None)
        if was is None:
            continue  # the server did not say it read this stem: nothing to compare
        if on_disk.get(was) is None:
            problems.append(f"{was} was removed {since}: Configure again")
        elif now != was:
            problems.append(f"{now} appeared {since} and is read before {was}: "
                            "Configure again")
        elif on_disk[was] != loaded[was]:
            problems.append(f"{was} changed {since}: Configure again")
    for name, digest in loaded.items():
        if any(name in pair for pair in candidates.values()):
            continue
        if on_disk.get(name) is not None and on_disk[name] != digest:
            problems.append(f"{name} changed {since}: Configure again")
    return problems


async def check_drift(db: EngineDatabase, pool: HostPool,
                      coords: Iterable[EccCoordinator]) -> list[str]:
    """Compare each server's configuration files on disk with what it loaded at Configure.

    Returns
    -------
    list of str
        One sentence per difference, e.g. ``configure-experiment.xcfg changed since
        CoBo[3] was configured at 21:04: Configure again``; empty when none. A server
        whose files cannot be read gets a sentence saying so.
    """
    servers = await db.run(_servers, [c.info.pk for c in coords])
    found = await asyncio.gather(*(_check_server(pool, s) for s in servers))
    return [sentence for sentences in found for sentence in sentences]


def drift_refusal(problems: list[str]) -> str:
    """The text of a Start refused for ``problems``."""
    return (f"{DRIFT_REFUSAL}: {'; '.join(problems)}. The boards run with what they "
            "loaded: Configure again, or confirm to start anyway")
