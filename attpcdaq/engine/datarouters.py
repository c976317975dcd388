"""Watching the data routers: process up, staging directory clean, data rate.

Each check asks the router's machine (over SSH, or directly when it is this
machine) whether its ``dataRouter`` process runs (told apart from others on
the same machine by its data port) and which ``.graw`` files wait in its
working directory. Only changes are written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.utils import timezone

from attpcdaq.daq.models import DataRouter
from attpcdaq.remote import HostPool, RemoteError, RemoteHost

from .database import EngineDatabase

log = logging.getLogger(__name__)
PROCESS_NAME = "dataRouter"


@dataclass
class RouterInfo:
    """What the watcher needs of a DataRouter row."""

    pk: int
    name: str
    address: str
    ssh_host: str
    port: int
    working_dir: str


@dataclass
class RouterHealth:
    """What the last check found."""

    online: bool = False
    clean: bool = True
    waiting: int = 0  # .graw files not yet filed
    workdir: str = ""
    error: str = ""
    rate: float = 0.0
    _bytes: int = 0
    _at: float = field(default_factory=time.monotonic)

    @property
    def bytes(self) -> int:
        """The bytes of the .graw files in its working directory at the last check that
        could list them (the open run's data so far: Start needs the directory clean)."""
        return self._bytes


def host_for(pool: HostPool, ssh_host: str, address: str) -> RemoteHost:
    """The machine of a router or ECC server: over SSH when ``ssh_host`` is set."""
    if ssh_host:
        return pool.host(ssh_host, local=False)
    return pool.host(address, local=True)


class RouterWatcher:
    """Checks every data router on an interval and on demand."""

    def __init__(self, db: EngineDatabase, pool: HostPool) -> None:
        self.db = db
        self.pool = pool
        self.health: dict[int, RouterHealth] = {}
        self._written: dict[int, dict] = {}
        #: Told after each check (router, previous health or None, health): the run keeper.
        self.on_check: Callable[[RouterInfo, RouterHealth | None, RouterHealth],
                                Awaitable[None]] | None = None

    async def routers(self) -> list[RouterInfo]:
        """Every data router in the database."""
        return await self.db.run(lambda: [
            RouterInfo(r.pk, r.name, r.ip_address, r.ssh_host, r.port, r.working_dir)
            for r in DataRouter.objects.all()])

    async def check_all(self) -> list[tuple[RouterInfo, RouterHealth]]:
        """Check every router concurrently; return what was found."""
        routers = await self.routers()
        found = await asyncio.gather(*(self.check(router) for router in routers))
        return list(zip(routers, found, strict=True))

    def host(self, router: RouterInfo) -> RemoteHost:
        """The machine a router runs on."""
        return host_for(self.pool, router.ssh_host, router.address)

    async def workdir(self, router: RouterInfo) -> str:
        """The router's working directory: configured, or read from its process."""
        if router.working_dir:
            return router.working_dir
        found = await self.host(router).find_workdir(PROCESS_NAME, port=router.port)
        if not found:
            raise RemoteError(router.name, "its working directory is not set and no running "
                              f"{PROCESS_NAME} listens on port {router.port}")
        return found

    async def check(self, router: RouterInfo) -> RouterHealth:
        """Check one router and write what changed."""
        last = self.health.get(router.pk)
        previous = last or RouterHealth()
        health = RouterHealth(_bytes=previous._bytes, _at=previous._at)
        host = self.host(router)
        try:
            health.online = await host.process_running(PROCESS_NAME, port=router.port)
            health.workdir = await self.workdir(router)
            files = await host.list_files(health.workdir)
        except RemoteError as exc:
            health.error = str(exc)
            health.clean = previous.clean
        else:
            health.waiting = len(files)
            health.clean = not files
            total, now = sum(f.size for f in files), time.monotonic()
            grown = total - previous._bytes
            health.rate = grown / (now - previous._at) if grown > 0 and previous._bytes else 0.0
            health._bytes, health._at = total, now
            if not health.online:
                health.error = f"no {PROCESS_NAME} process listens on port {router.port}"
        if previous.error != health.error and health.error:
            log.warning("data router %s: %s", router.name, health.error)
        self.health[router.pk] = health
        await self._write(router.pk, health)
        if self.on_check is not None:
            await self.on_check(router, last, health)
        return health

    async def _write(self, pk: int, health: RouterHealth) -> None:
        fields = {"is_online": health.online, "is_clean": health.clean,
                  "data_rate": round(health.rate, 1), "last_error": health.error}
        if self._written.get(pk) != fields:
            self._written[pk] = dict(fields)
            fields["last_checked"] = timezone.now()
            await self.db.run(lambda: DataRouter.objects.filter(pk=pk).update(**fields))

    async def refusal(self, only: set[str] | None = None) -> str | None:
        """Why a run may not start now, checking every router afresh; None when it may.

        ``only``: the names of the routers that matter (those of the run's boards).
        """
        problems = []
        for router, health in await self.check_all():
            if only is not None and router.name not in only:
                continue
            if not health.online:
                problems.append(f"data router {router.name} is offline"
                                f"{': ' + health.error if health.error else ''}")
            elif not health.clean:
                problems.append(f"data router {router.name} is not clean: {health.waiting} "
                                f"unfiled .graw file(s) in {health.workdir}")
        return "; ".join(problems) or None
