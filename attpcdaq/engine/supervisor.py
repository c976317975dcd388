"""The engine: owns one coordinator per ECC server, runs commands, keeps a heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models.signals import post_save
from django.utils import timezone

from attpcdaq.daq.models import Command, ECCServer, RunMetadata
from attpcdaq.get import EccError, State, StateReply
from attpcdaq.remote import HostPool, RemoteError, SshOptions

from .control import Controller, Refused, StepFailed
from .coordinator import EccCoordinator, PollSettings
from .database import QUICK, EngineDatabase, ServerInfo
from .datarouters import RouterWatcher, host_for
from .filing import RunFiler
from .pruning import prune_loop
from .runs import RunKeeper

log = logging.getLogger(__name__)


@dataclass
class EngineSettings:
    """Timing of the engine's loops."""

    poll: PollSettings = field(default_factory=PollSettings)
    #: How often the database is asked whether commands wait (one query for all kinds).
    command_interval: float = 0.01
    reload_interval: float = 5.0
    #: ATTPCDAQ_HEARTBEAT_INTERVAL: the web side reads a beat older than
    #: ATTPCDAQ_ENGINE_STALE_AFTER as "the engine is not running".
    heartbeat_interval: float = field(
        default_factory=lambda: django_settings.ENGINE_HEARTBEAT_INTERVAL)
    router_interval: float = 2.0
    #: A transition that holds up a waiting Stop is abandoned after this long at least
    #: (and three times its usual time).
    stop_patience: float = 5.0
    ssh_options: SshOptions | None = None


class Engine:
    """The asyncio service that talks to the hardware."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.db = EngineDatabase()
        self.pool = HostPool(self.settings.ssh_options)
        self.routers = RouterWatcher(self.db, self.pool)
        self.filer = RunFiler(self.db, self.pool, self.routers)
        self.coordinators: dict[int, EccCoordinator] = {}
        self.keeper = RunKeeper(self.db, self.coordinators, self.routers, self.filer,
                                self._spawn)
        self.routers.on_check = self.keeper.router_checked
        self.controller = Controller(self)
        self._fetched_configs: set[int] = set()
        self._unexpected_seen: set[str] = set()
        self._unexpected_logged: set[str] = set()  # logged, maybe not yet shown
        self._tasks: list[asyncio.Task] = []
        # Set by _watch_commands when a command of that kind waits to be claimed.
        self._transition_waiting = asyncio.Event()
        self._quick_waiting = asyncio.Event()
        self._started = timezone.now()
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_uid = f"engine-wake-{id(self)}"

    # Life cycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Start polling every server, recover from a previous engine, run commands."""
        interrupted = await self.db.fail_interrupted_commands()
        if interrupted:
            await self.db.event("warning", "engine",
                                f"{interrupted} command(s) were cut short by an engine restart")
        await self.reload_servers()
        await asyncio.gather(*(c.wait_first_poll() for c in self.coordinators.values()))
        await self.keeper.recover()
        await self._beat()
        self._loop = asyncio.get_running_loop()
        post_save.connect(self._command_saved, sender=Command, weak=False,
                          dispatch_uid=self._wake_uid)
        for loop in (self._watch_commands, self._command_loop, self._quick_command_loop,
                     self._reload_loop,
                     self._heartbeat_loop, self._router_loop, self._stop_waits_loop,
                     self._timed_loop):
            self._tasks.append(asyncio.create_task(loop(), name=loop.__name__))
        self._tasks.append(asyncio.create_task(prune_loop(self.db), name="prune_loop"))
        log.info("engine started with %d ECC server(s)", len(self.coordinators))

    async def stop(self) -> None:
        """Stop every loop and coordinator and close the database thread."""
        if self._stopped:
            return
        self._stopped = True
        post_save.disconnect(sender=Command, dispatch_uid=self._wake_uid)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.stop() for c in self.coordinators.values()))
        self.coordinators.clear()
        await self.pool.close()
        await self.db.close()

    async def reload_servers(self) -> None:
        """Start coordinators for new servers, stop those of deleted or moved ones."""
        known = {info.pk: info for info in await self.db.servers()}
        for pk, coord in list(self.coordinators.items()):
            if pk not in known or known[pk].url != coord.info.url:
                await self.coordinators.pop(pk).stop()
            else:
                coord.info = known[pk]  # name and enabled may change
        for pk, info in known.items():
            if pk not in self.coordinators:
                self._add(info)

    def _add(self, info: ServerInfo) -> None:
        coord = EccCoordinator(info, self.db, self.settings.poll, on_change=self._on_change)
        self.coordinators[info.pk] = coord
        coord.start()

    # Loops ------------------------------------------------------------------------
    async def _watch_commands(self) -> None:
        """Ask every ``command_interval`` whether commands wait, and wake the loop that
        runs their kind: one query serves both loops, so the interval can be short."""
        while True:
            try:
                kinds = await self.db.pending_kinds()
            except Exception as exc:  # asked 100 times a second: shown once, not each time
                await self._unexpected("reading the commands", exc)
                kinds = set()
            if any(kind in QUICK for kind in kinds):
                self._quick_waiting.set()
            if any(kind not in QUICK for kind in kinds):
                self._transition_waiting.set()
            await asyncio.sleep(self.settings.command_interval)

    def _command_saved(self, sender, instance: Command, created: bool, **kwargs) -> None:
        """A command made in this process (``attpcdaq serve`` runs the web here too):
        wake the loop of its kind once it is committed, not at the watcher's next look.

        Called in whichever thread saved it. The watcher stays the way of record: it
        finds the commands of other processes, and any this misses.
        """
        if not created or instance.status != Command.Status.PENDING:
            return
        waiting = self._quick_waiting if instance.kind in QUICK else self._transition_waiting
        loop = self._loop

        def wake() -> None:
            # The engine stopped meanwhile: the next engine's watcher finds the command.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(waiting.set)

        transaction.on_commit(wake)

    async def _command_loop(self) -> None:
        """Run transitions one at a time, in the order they were asked."""
        while True:
            await self._transition_waiting.wait()
            self._transition_waiting.clear()
            command = await self._claim(quick=False)
            if command is not None:
                await self.run_command(command)
                self._transition_waiting.set()  # the next may be waiting already

    async def _quick_command_loop(self) -> None:
        """Run quick reads (configuration lists, logs) at once, beside transitions."""
        while True:
            await self._quick_waiting.wait()
            self._quick_waiting.clear()
            command = await self._claim(quick=True)
            if command is not None:
                self._spawn(self.run_command(command))
                self._quick_waiting.set()

    async def _claim(self, *, quick: bool) -> Command | None:
        try:
            return await self.db.claim_command(quick=quick)
        except Exception as exc:  # asked 100 times a second: shown once, not logged each time
            await self._unexpected("reading the commands", exc)
            return None

    async def run_command(self, command: Command) -> None:
        """Run one claimed command and record its outcome where the page shows it."""
        log.info("command %s by %s", command, command.user or "system")
        error, result = "", None
        try:
            result = await self.controller.execute(command)
        except (Refused, StepFailed, EccError, RemoteError) as exc:
            error = str(exc)
        except Exception as exc:  # recorded on the command, not only in a log
            log.exception("command %s failed unexpectedly", command)
            error = f"internal error: {type(exc).__name__}: {exc}"
        run_id = None if command.kind in QUICK else self.controller.run_id
        if error:
            source = command.data_router or command.ecc_server
            await self.db.event("error", source.name if source else "run control",
                                f"{command.describe()}: {error}", run_id)
        await self.db.finish_command(command.pk, error, run_id, result or "")

    async def _stop_waits_loop(self) -> None:
        """A Stop must not wait behind a transition that hangs on some server.

        Transitions run one at a time, so a Stop asked while a Start hangs on one
        board would wait for the whole timeout. When a Stop waits, every transition
        of ours that has run three times its usual time (and ``stop_patience`` s)
        is abandoned: that server is marked hung and excluded, the command it held
        up ends with the others, and the Stop runs next.
        """
        while True:
            await asyncio.sleep(self.settings.poll.fast_interval)
            try:
                hung = [c for c in self.coordinators.values() if c.busy is not None
                        and c.elapsed() >= max(3 * c.usual_seconds(),
                                               self.settings.stop_patience)]
                stop = await self.db.run(_waiting_stop) if hung else None
                for coord in hung if stop else ():
                    await self.controller.abandon(
                        coord, f"{coord.busy} hung: abandoned after {coord.elapsed():.0f} s "
                        f"because {stop} waits")
            except Exception as exc:
                await self._unexpected("checking for a Stop held up", exc)

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            try:
                await self.reload_servers()
            except Exception as exc:
                await self._unexpected("reloading the ECC servers", exc)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                await self._beat()
            except Exception as exc:
                await self._unexpected("writing the heartbeat", exc)

    async def _beat(self) -> None:
        await self.db.beat(self._started, os.getpid(), socket.gethostname())

    # Configuration sets -----------------------------------------------------------
    async def fetch_configs(self, coord: EccCoordinator, *, raise_errors: bool = False) -> None:
        """Ask a server for its configuration sets and store them."""
        try:
            configs = await coord.client.get_config_ids()
        except EccError as exc:
            await coord.record_error(str(exc))
            if raise_errors:
                raise
            return
        pk = coord.info.pk
        await self.db.run(lambda: ECCServer.objects.get(pk=pk).store_configs(configs))

    async def tail_log(self, command: Command, lines: int = 200) -> str:
        """The last lines of the log of the command's ECC server or data router."""
        target = command.data_router or command.ecc_server
        if target is None or not target.log_path:
            raise Refused(f"no log file is set for {target or 'this command'}")
        host = host_for(self.pool, target.ssh_host, target.ip_address)
        return await host.tail(target.log_path, lines=lines)

    # Runs ---------------------------------------------------------------------------
    async def _router_loop(self) -> None:
        """Check the routers, and retry filing any run left unfiled, on an interval."""
        while True:
            try:
                await self.routers.check_all()
                await self.filer.file_pending()
                await self.keeper.settle_unattributed()
            except Exception as exc:
                await self._unexpected("checking the data routers and filing", exc)
            await asyncio.sleep(self.settings.router_interval)

    async def _timed_loop(self) -> None:
        """Stop the open run at its limits; restart it when asked (engine/timed.py)."""
        from .timed import RunTimer

        timer = RunTimer(self.db, self.routers)
        while True:
            await asyncio.sleep(self.settings.poll.interval)
            try:
                await timer.check()
            except Exception as exc:
                await self._unexpected("checking the run's limits", exc)

    async def _unexpected(self, what: str, exc: Exception) -> None:
        """A loop's unexpected failure (a bug, or the database gone): logged with its
        traceback and shown on the page, once per distinct error."""
        message = f"{what} failed unexpectedly: {type(exc).__name__}: {exc}"
        if message in self._unexpected_seen:
            return
        if max(len(self._unexpected_seen), len(self._unexpected_logged)) >= 100:
            # Bounded: a flood of distinct errors says itself again later.
            self._unexpected_seen.clear()
            self._unexpected_logged.clear()
        if message not in self._unexpected_logged:
            log.error("%s failed unexpectedly", what, exc_info=exc)
            self._unexpected_logged.add(message)
        self._unexpected_seen.add(message)  # before the write: two loops may fail at once
        try:
            await self.db.event("error", "engine", message)
        except Exception:  # the database itself failing: the log above is all there is
            # Said on the page once it can be written (and not logged again meanwhile).
            self._unexpected_seen.discard(message)

    def _on_change(self, coord: EccCoordinator, reply: StateReply | None,
                   previous: State | None) -> None:
        """After every poll: fetch a new server's configuration sets; tell the keeper.

        ``reply`` is None when the server went offline; ``previous`` is the state
        it was in before this poll.
        """
        if reply is not None and coord.info.pk not in self._fetched_configs:
            self._fetched_configs.add(coord.info.pk)
            self._spawn(self.fetch_configs(coord))
        self.keeper.observe(coord, reply, previous)

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.append(task)
        task.add_done_callback(lambda t: t in self._tasks and self._tasks.remove(t))


def _waiting_stop() -> Command | None:
    """A pending system-wide command that takes the open run down (Stop, Reset, lower)."""
    if not RunMetadata.objects.filter(status__in=RunMetadata.OPEN).exists():
        return None
    return (Command.objects.select_related("user")
            .filter(status=Command.Status.PENDING, ecc_server=None, data_router=None,
                    kind__in=[Command.Kind.TRANSITION, Command.Kind.RESET])
            .exclude(target__gte=State.RUNNING).order_by("created").first())
