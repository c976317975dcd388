"""Filing a stopped run: its data into its own folder, its configuration backed up.

Crash-safe and idempotent: ``RunMetadata.filed`` turns true only once every
router's files and every server's configuration are where they belong, and
the remote operations finish what an interrupted earlier attempt began. So a
run left unfiled by a crash or an error is simply filed again, nothing lost
or duplicated.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from attpcdaq.daq.models import ECCServer, RunMetadata
from attpcdaq.get import ConfigId
from attpcdaq.remote import FileInfo, HostPool, RemoteError, RemoteFileNotFound
from attpcdaq.remote.backup import choose_config_files

from .database import EngineDatabase
from .datarouters import RouterInfo, RouterWatcher, host_for

log = logging.getLogger(__name__)
SETTLE_SECONDS = 0.5  # a router may still be closing its files when Stop returns


class FilingError(Exception):
    """Filing could not be completed; the message names the router or server."""


class RunFiler:
    """Files stopped runs, one at a time."""

    def __init__(self, db: EngineDatabase, pool: HostPool, routers: RouterWatcher) -> None:
        self.db = db
        self.pool = pool
        self.routers = routers
        self._lock = asyncio.Lock()

    async def file_pending(self) -> None:
        """File every stopped or aborted run not yet filed (oldest first)."""
        pending = await self.db.run(lambda: list(
            RunMetadata.objects.select_related("experiment").filter(
                filed=False, status__in=[RunMetadata.Status.STOPPED,
                                         RunMetadata.Status.ABORTED])
            .order_by("created")))
        for run in pending:
            await self.file(run)

    async def file(self, run: RunMetadata) -> bool:
        """File one run; record the outcome on it. Returns True once filed."""
        async with self._lock:
            fresh = await self.db.run(lambda: RunMetadata.objects.get(pk=run.pk).filed)
            if fresh:
                return True
            try:
                manifest = {"routers": await self._file_data(run),
                            "configs": await self._back_up_configs(run)}
            except (FilingError, RemoteError) as exc:
                message = f"filing run {run.run_number} failed: {exc}"
                await self.db.update_run(run.pk, filing_error=str(exc))
                await self.db.event("error", "filing", message, run.pk)
                return False
            # Routers shown clean before the run shows filed: whoever sees the one sees both.
            await self.routers.check_all()
            await self.db.update_run(run.pk, manifest=manifest, filed=True, filing_error="")
            files = sum(len(r["files"]) for r in manifest["routers"].values())
            await self.db.event("info", "filing", f"run {run.run_number} filed: {files} file(s)",
                                run.pk)
            return True

    async def _file_data(self, run: RunMetadata) -> dict:
        manifest = {}
        for router in await self.routers.routers():
            manifest[router.name] = await self._file_router(router, run)
        return manifest

    async def _file_router(self, router: RouterInfo, run: RunMetadata) -> dict:
        """Move one router's files into the run folder and check nothing was lost."""
        host = self.routers.host(router)
        workdir = await self.routers.workdir(router)
        before = await _settled(host, workdir)
        result = await host.file_run(workdir, run.experiment.name, run.run_number)
        filed = {f.name: f.size for f in result.files}
        missing = [f"{f.name} ({f.size} B)" for f in before if filed.get(f.name) != f.size]
        if missing:
            raise FilingError(f"data router {router.name}: after filing, {len(missing)} "
                              f"file(s) are not in {result.destination} with their size: "
                              f"{', '.join(missing[:5])}")
        left = await host.list_files(workdir)
        if left:
            raise FilingError(f"data router {router.name}: {len(left)} file(s) still in "
                              f"{workdir} after filing")
        return {"directory": result.destination,
                "files": [{"name": f.name, "size": f.size} for f in result.files],
                "bytes": result.total_bytes}

    async def _back_up_configs(self, run: RunMetadata) -> dict:
        """Copy the files each server's configuration (as used by the run) makes it read.

        Those are its describe and configure files (``ConfigId.file_stems``), each
        ``.xcfg``, else ``.xml``; ``prepare-*`` files are never read, so never copied.
        """
        servers = await self.db.run(lambda: {s.name: s for s in ECCServer.objects.all()})
        backups = {}
        for name, config in sorted(run.configs.items()):
            server = servers.get(name)
            if server is None or not server.config_dir:
                continue  # no configuration directory known: nothing to copy
            stems = list(ConfigId.parse(config).file_stems().values())
            host = host_for(self.pool, server.ssh_host, server.ip_address)
            try:
                names = await choose_config_files(host, server.config_dir, stems)
            except RemoteFileNotFound as exc:
                raise FilingError(f"ECC server {name} ({config}): {exc}; nothing of its "
                                  "configuration was backed up") from exc
            result = await host.backup_configs(server.config_dir, names,
                                               str(settings.CONFIG_BACKUP_ROOT),
                                               run.experiment.name, run.run_number)
            backups[name] = {"directory": result.destination,
                             "files": [f.name for f in result.files]}
        return backups


async def _settled(host, workdir: str) -> list[FileInfo]:
    """The directory's files once two listings agree (writers have closed them)."""
    before = await host.list_files(workdir)
    for _ in range(20):
        await asyncio.sleep(SETTLE_SECONDS)
        after = await host.list_files(workdir)
        if after == before:
            return after
        before = after
    raise FilingError(f"files in {workdir} keep changing: is a run still going?")
