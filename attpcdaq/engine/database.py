"""Every database access of the engine, run on one thread of its own.

The ORM is synchronous; the engine is not. Running all of the engine's queries on
one dedicated thread keeps the event loop free, keeps one connection, and never
contends with the web server's threads inside this process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from attpcdaq.daq.models import Command, ECCServer, EngineHeartbeat, Event, Experiment, RunMetadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerInfo:
    """What a coordinator needs of an ECC server row."""

    pk: int
    name: str
    url: str
    enabled: bool
    #: Its boards are only the MuTAnT (the trigger): it moves in its own phase.
    controls_trigger: bool = False
    #: Taken out of the system by an operator: skipped by walks, Start and Stop.
    excluded: bool = False
    #: Seconds its recent transitions took, by operation (read once, with the rest).
    transition_times: dict | None = None


class EngineDatabase:
    """Async facade over the engine's queries, all run on one thread."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-db")
        self._pending: dict[int, dict[str, Any]] = {}
        self._flushed: asyncio.Future | None = None  # the pending writes' commit
        self._writing = False  # a batch of server writes is on the thread
        #: Since when the engine has beaten without a gap the page would have seen (no
        #: beat for ENGINE_STALE_AFTER): a command asked before then waited for an engine
        #: that was not running, and is refused at claim time once it is COMMAND_EXPIRY
        #: old. None before the first beat.
        self.alive_since: datetime | None = None
        self._last_beat: float | None = None

    async def run(self, function, *args: Any, **kwargs: Any) -> Any:
        """Run ``function(*args, **kwargs)`` on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(_with_connection, function, *args, **kwargs))

    async def close(self) -> None:
        """Close the thread's connection and stop the thread."""
        from django.db import connections

        await self.run(connections.close_all)
        self._executor.shutdown(wait=True)

    # Servers -------------------------------------------------------------------
    async def servers(self) -> list[ServerInfo]:
        """Every ECC server."""
        return await self.run(_servers)

    async def update_server(self, pk: int, **fields: Any) -> None:
        """Write the given fields of one server; returns once they are committed.

        Writes that arrive together (a hundred servers answering the same
        transition) are merged and committed in one transaction, and while one
        batch is on the thread the next gathers: a hundred answers coming over
        40 ms make a few transactions, not one per loop turn, each of which would
        hold the GIL that the event loop needs to read the answers (bench (a)).
        """
        self._pending.setdefault(pk, {}).update(fields)
        if self._flushed is None:
            self._flushed = asyncio.get_running_loop().create_future()
            if not self._writing:
                asyncio.get_running_loop().call_soon(self._flush_soon)
        await asyncio.shield(self._flushed)

    def _flush_soon(self) -> None:
        if self._writing or self._flushed is None:
            return
        pending, done = self._pending, self._flushed
        self._pending, self._flushed, self._writing = {}, None, True
        task = asyncio.ensure_future(self.run(_update_servers, pending))
        task.add_done_callback(functools.partial(self._flush_done, done))

    def _flush_done(self, done: asyncio.Future, task: asyncio.Future) -> None:
        self._writing = False
        _settle(done, task)
        self._flush_soon()  # what gathered meanwhile

    # Events --------------------------------------------------------------------
    async def event(self, level: str, source: str, message: str, run_id: int | None = None):
        """Record an event for the page and log it."""
        log.log(logging.ERROR if level in ("error", "alarm") else logging.INFO,
                "%s: %s", source, message)
        await self.run(lambda: Event.objects.create(level=level, source=source, message=message,
                                                    run_id=run_id))

    async def beat(self, started, pid: int, hostname: str) -> None:
        """Touch the heartbeat row."""
        await self.run(lambda: EngineHeartbeat.objects.update_or_create(
            pk=1, defaults={"beat": timezone.now(), "started": started, "pid": pid,
                            "hostname": hostname}))
        beaten = time.monotonic()
        if self._last_beat is None or beaten - self._last_beat >= settings.ENGINE_STALE_AFTER:
            self.alive_since = timezone.now()  # the first beat, or the first after a gap
        self._last_beat = beaten

    # Commands ------------------------------------------------------------------
    async def pending_kinds(self) -> set[str]:
        """The kinds of the commands waiting to be claimed (usually none): one
        precompiled query."""
        return await self.run(_pending_kinds)

    async def claim_command(self, *, quick: bool) -> Command | None:
        """Take the oldest pending command, marking it running; None when none waits.

        ``quick`` commands (reads) and the others (transitions) are claimed apart. A
        command asked before :attr:`alive_since` and older than ``COMMAND_EXPIRY`` is
        failed instead ("the engine is not running"): a Start asked at night, while the
        engine was down, never starts a run in the morning.
        """
        return await self.run(_claim_command, quick, self.alive_since)

    async def finish_command(self, pk: int, error: str = "", run_id: int | None = None,
                             result: str = "") -> None:
        """Record a command's outcome: done when ``error`` is empty, else failed."""
        status = Command.Status.FAILED if error else Command.Status.DONE
        fields = {"status": status, "error": error, "finished": timezone.now(), "result": result}
        if run_id is not None:
            fields["run_id"] = run_id
        await self.run(lambda: Command.objects.filter(pk=pk).update(**fields))

    async def fail_interrupted_commands(self) -> int:
        """Fail commands left running by an engine that stopped; return how many."""
        return await self.run(lambda: Command.objects.filter(status=Command.Status.RUNNING)
                              .update(status=Command.Status.FAILED, finished=timezone.now(),
                                      error="the engine stopped while this command ran"))

    # Runs ----------------------------------------------------------------------
    async def open_run(self) -> RunMetadata | None:
        """The open run of the active experiment, if any."""
        return await self.run(_open_run)

    async def update_run(self, pk: int, **fields: Any) -> None:
        """Write the given fields of a run."""
        await self.run(lambda: RunMetadata.objects.filter(pk=pk).update(**fields))

    # Loaded configurations (see engine/loaded.py) ----------------------------------------
    async def store_loaded_config(self, pk: int, config: str, files: list[dict],
                                  problem: str = "") -> None:
        """Replace what server ``pk`` has loaded: Configure just succeeded on it."""
        await self.run(_store_loaded_config, pk, config, files, problem)

    async def clear_loaded_config(self, pk: int) -> None:
        """Forget what server ``pk`` had loaded: it went below Ready, or restarted."""
        await self.run(_clear_loaded_config, pk)

    async def reserve_run_with_loaded(self, configs: dict[str, str], pks: list[int],
                                      coverage: dict | None = None, options: dict | None = None,
                                      user_id: int | None = None) -> RunMetadata:
        """Create the next run of the active experiment, with each server's loaded
        configuration copied onto it and what the Start was given (``options``: title,
        class, comment, limits, auto_restart; who asked) written on it, in one
        transaction.

        Raises
        ------
        RuntimeError
            When there is no active experiment or a run is already open.
        """
        return await self.run(_reserve_run_with_loaded, configs, pks, coverage, options or {},
                              user_id)


def _settle(future: asyncio.Future, task: asyncio.Future) -> None:
    """Pass a finished task's outcome on to ``future``."""
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(None)


def _with_connection(function, *args, **kwargs):
    _drop_if_unusable()
    return function(*args, **kwargs)


def _drop_if_unusable() -> None:
    """Keep the thread's connection for the engine's life; drop it only when it errored
    and no longer answers (the database restarted), as a request would drop it.

    Not ``close_old_connections``: the settings keep no connection (CONN_MAX_AGE 0, as
    Django asks under ASGI, for the web's threads), so it would close this one after
    every query, and the engine asks for commands 100 times a second.
    """
    if connection.connection is None:
        return
    if connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
        connection.close()  # left inside a transaction by a failure: start clean
    elif connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()


def _servers() -> list[ServerInfo]:
    servers = ECCServer.objects.prefetch_related("data_sources")
    return [ServerInfo(s.pk, s.name, s.url, s.enabled, _controls_trigger(s), s.excluded,
                       clean_times(s.transition_times)) for s in servers]


def clean_times(value) -> dict[str, list[float]]:
    """A server's recent transition durations as stored; anything malformed is dropped."""
    if not isinstance(value, dict):
        return {}
    return {str(op): [float(t) for t in times if isinstance(t, int | float)
                      and not isinstance(t, bool)]
            for op, times in value.items() if isinstance(times, list)}


def _controls_trigger(server: ECCServer) -> bool:
    names = [source.name for source in server.data_sources.all()]
    return bool(names) and all(name.startswith("Mutant[") for name in names)


def _update_servers(pending: dict[int, dict[str, Any]]) -> None:
    """Write each server's fields, in one transaction and one ``executemany`` per set of
    field names: a hundred servers answering one transition are a hundred rows, and one
    ``QuerySet.update`` each cost 0.4 ms of Python (the engine's database thread is the
    last step of every system-wide transition; bench/bench_engine.py (a))."""
    shapes: dict[tuple[str, ...], list[list[Any]]] = {}
    for pk, fields in pending.items():
        names = tuple(sorted(fields))
        shapes.setdefault(names, []).append(
            [_SERVER_FIELDS[name].get_db_prep_save(fields[name], connection) for name in names]
            + [pk])
    with transaction.atomic(), connection.cursor() as cursor:
        for names, rows in shapes.items():
            cursor.executemany(_update_sql(connection.vendor, names), rows)


_SERVER_FIELDS = {field.name: field for field in ECCServer._meta.concrete_fields}


@functools.cache
def _update_sql(vendor: str, names: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(_SERVER_FIELDS[name].column)} = %s" for name in names)
    # Only the model's own column names are written in; every value is a parameter.
    return (f"UPDATE {quote(ECCServer._meta.db_table)} SET {assignments} "  # noqa: S608
            f"WHERE {quote(ECCServer._meta.pk.column)} = %s")


#: Run beside transitions by the quick loop (services.QUICK_KINDS: the same kinds).
QUICK = (Command.Kind.REFRESH_CONFIGS, Command.Kind.TAIL_LOG, Command.Kind.ABORT,
         Command.Kind.EXCLUDE, Command.Kind.INCLUDE)


@functools.cache
def _pending_kinds_sql(vendor: str) -> tuple[str, tuple]:
    # Compiled once per backend: the engine asks 100 times a second whether a command
    # waits, and compiling the ORM query each time was most of an idle engine's CPU.
    query = (Command.objects.filter(status=Command.Status.PENDING).order_by()
             .values_list("kind", flat=True).distinct().query)
    return query.sql_with_params()


def _pending_kinds() -> set[str]:
    """The kinds of the commands waiting to be claimed (usually none)."""
    sql, params = _pending_kinds_sql(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {kind for (kind,) in cursor.fetchall()}


def _claim_command(quick: bool, alive_since: datetime | None = None) -> Command | None:
    from attpcdaq.daq.services import expire_command

    if not any((kind in QUICK) == quick for kind in _pending_kinds()):
        return None  # the usual answer, from one precompiled query
    kinds = Q(kind__in=QUICK) if quick else ~Q(kind__in=QUICK)
    now = timezone.now()
    # Asked while no engine ran (before this one beat without a gap) and too old by now.
    expired_before = min(alive_since or now, now - timedelta(seconds=settings.COMMAND_EXPIRY))
    with transaction.atomic():
        while True:
            command = (Command.objects.select_related("ecc_server", "data_router", "user")
                       .filter(kinds, status=Command.Status.PENDING).order_by("created", "pk")
                       .first())
            if command is None:
                return None
            if command.created >= expired_before:
                break
            log.warning("refusing %s: asked at %s, while the engine was not running",
                        command, command.created)
            expire_command(command, now)
        claimed = Command.objects.filter(pk=command.pk, status=Command.Status.PENDING).update(
            status=Command.Status.RUNNING, started=timezone.now())
        return command if claimed else None


def _open_run() -> RunMetadata | None:
    return (RunMetadata.objects.select_related("experiment")
            .filter(status__in=RunMetadata.OPEN).order_by("-created").first())


def _reserve_run(configs: dict[str, str], coverage: dict | None = None) -> RunMetadata:
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(is_active=True).first()
        if experiment is None:
            raise RuntimeError("there is no active experiment")
        if RunMetadata.objects.filter(status__in=RunMetadata.OPEN).exists():
            raise RuntimeError("a run is already open")
        return RunMetadata.objects.create(experiment=experiment,
                                          run_number=experiment.next_run_number,
                                          status=RunMetadata.Status.STARTING, configs=configs,
                                          coverage=coverage or {})


def _store_loaded_config(pk: int, config: str, files: list[dict], problem: str) -> None:
    from attpcdaq.daq.models import LoadedConfig

    LoadedConfig.objects.update_or_create(ecc_server_id=pk, defaults={
        "config": config, "configured_at": timezone.now(), "files": files,
        "problem": problem})


def _clear_loaded_config(pk: int) -> None:
    from attpcdaq.daq.models import LoadedConfig

    LoadedConfig.objects.filter(ecc_server_id=pk).delete()


def _reserve_run_with_loaded(configs: dict[str, str], pks: list[int],
                             coverage: dict | None = None, options: dict | None = None,
                             user_id: int | None = None) -> RunMetadata:
    from attpcdaq.daq.models import LoadedConfig, RunConfig

    with transaction.atomic():
        run = _reserve_run(configs, coverage)
        _apply_start_options(run, options or {}, user_id)
        RunConfig.objects.bulk_create([
            RunConfig(run=run, server_name=loaded.ecc_server.name, config=loaded.config,
                      configured_at=loaded.configured_at, files=loaded.files,
                      problem=loaded.problem)
            for loaded in LoadedConfig.objects.select_related("ecc_server")
            .filter(ecc_server_id__in=pks)])
        return run


def _apply_start_options(run: RunMetadata, options: dict, user_id: int | None) -> None:
    """Write what a Start was given onto its run (checked when the Start was asked)."""
    from attpcdaq.daq.models import RunClass

    fields: dict = {"started_by_id": user_id}
    for key in ("title", "comment", "limit_seconds", "limit_events", "limit_bytes",
                "auto_restart"):
        if options.get(key) is not None:
            fields[key] = options[key]
    if options.get("run_class"):
        fields["run_class"] = RunClass.objects.filter(name=options["run_class"]).first()
    RunMetadata.objects.filter(pk=run.pk).update(**fields)
    for name, value in fields.items():
        setattr(run, name, value)
