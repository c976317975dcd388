"""The run keeper: the one owner of a run's life, from Start to filing.

Every rule of "what happens to the run when X fails" lives here (docs/ARCHITECTURE.md,
"The run's life"):

- **Taking part.** A run's boards are the enabled, not excluded ECC servers at its
  Start; its routers are the routers of their data sources. Both are written on the
  run (``coverage``) with the times and reasons of every exclusion and router outage.
- **Start** needs every board of the run Ready with a configuration selected, every
  router of the run online and clean, no run left unfiled and no unattributed data
  waiting for the operator's choice. The number is reserved in one transaction.
- **Closing.** A run closes when no board of the run is Running or Paused any more,
  whoever caused it: our Stop, a Breakup, an ECC server that restarted (it comes
  back Idle), a board excluded. When it is not our Stop, an alarm says why.
- **Recovery.** On restart an open run is reconciled with what the servers do:
  boards found Running keep (adopt) the run; a run caught Starting waits for boards
  still starting; boards found Running with no open run get a run of their own
  (marked as adopted), so that no board ever runs without a run.
- **Alarms**, once each per run: a board leaving Running or going offline during the
  run, a router going offline or receiving nothing during the run, a hung
  transition, a Stop that failed.

The keeper never talks to the hardware: the controller does, and tells it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

from attpcdaq.daq.models import (
    DataRouter,
    ECCServer,
    Experiment,
    RunMetadata,
    UnattributedData,
)
from attpcdaq.daq.services import start_config_refusal
from attpcdaq.get import State, StateReply
from attpcdaq.remote import RemoteError

from .database import EngineDatabase

if TYPE_CHECKING:
    from .coordinator import EccCoordinator
    from .datarouters import RouterHealth, RouterInfo, RouterWatcher
    from .filing import RunFiler

log = logging.getLogger(__name__)

LIVE = (State.RUNNING, State.PAUSED)
#: A router of a running run that has written nothing for this long raises an alarm.
NO_DATA_ALARM_SECONDS = 15.0


class StartRefused(Exception):
    """A Start that cannot go ahead as things stand; the message says why."""


def _now() -> str:
    return timezone.now().isoformat()


def _names(coords: Iterable[EccCoordinator]) -> str:
    return ", ".join(sorted(c.name for c in coords))


class RunKeeper:
    """Owns the open run: its opening, status, coverage, alarms, closing and recovery.

    Parameters
    ----------
    db
        The engine's database facade.
    coordinators
        The engine's coordinators by server primary key (read, never changed here).
    routers, filer
        The router watcher (its checks feed :meth:`router_checked`) and the filer.
    spawn
        Runs a coroutine in the background under the engine's supervision.
    """

    def __init__(self, db: EngineDatabase, coordinators: dict[int, EccCoordinator],
                 routers: RouterWatcher, filer: RunFiler,
                 spawn: Callable[[Coroutine], None]) -> None:
        self.db = db
        self.coordinators = coordinators
        self.routers = routers
        self.filer = filer
        self.spawn = spawn
        #: The open run (starting, running, paused or stopping), if any.
        self.open_run_id: int | None = None
        #: The servers taking part in the open run, by primary key.
        self.members: set[int] = set()
        #: Our own Start, Stop or abort is moving the boards: no alarm for that.
        self.moving = False
        self._alarmed: set[tuple[int, str, str]] = set()
        self._closing = False
        #: A run found Starting at recovery, with boards still starting: it is marked
        #: started when they all run.
        self._finishing_start: RunMetadata | None = None
        self._quiet_since: dict[int, float] = {}

    # Who takes part -----------------------------------------------------------------
    def participants(self) -> list[EccCoordinator]:
        """The servers a system-wide command moves: enabled and not excluded."""
        return [c for c in self.coordinators.values()
                if c.info.enabled and not c.info.excluded]

    def of_run(self) -> list[EccCoordinator]:
        """The servers of the open run still taking part (not excluded since)."""
        return [c for pk, c in self.coordinators.items()
                if pk in self.members and not c.info.excluded and c.info.enabled]

    # Start --------------------------------------------------------------------------
    async def check_start(self, coords: list[EccCoordinator]) -> None:
        """Refuse a Start that must not go ahead; nothing is changed.

        Raises
        ------
        StartRefused
            Naming what stands in the way: a server not Ready or without a
            configuration, a run not filed, a router offline or not clean,
            unattributed data waiting for the operator.
        """
        if not coords:
            raise StartRefused("there is no enabled ECC server that is not excluded")
        not_ready = [c for c in coords if c.state != State.READY]
        if not_ready:
            raise StartRefused("Start needs every server Ready; not Ready: " + ", ".join(
                f"{c.name} ({c.state.label if c.state is not None else 'unknown'})"
                for c in sorted(not_ready, key=lambda c: c.name)))
        unconfigured = await self.db.run(start_config_refusal, [c.info.pk for c in coords])
        if unconfigured:
            raise StartRefused(unconfigured)
        unfiled = await self.db.run(_unfiled_run)
        if unfiled is not None:
            why = f": {unfiled.filing_error}" if unfiled.filing_error else " (filing under way)"
            raise StartRefused(f"cannot start: run {unfiled.run_number} is not filed yet{why}")
        waiting = await self.db.run(_waiting_unattributed)
        if waiting:
            raise StartRefused("cannot start: " + "; ".join(waiting) + ": choose on the "
                               "status page whether to file them into a run or set them aside")
        routers = await self.db.run(_routers_of, [c.info.pk for c in coords])
        reason = await self.routers.refusal(only=routers)
        if reason:
            raise StartRefused(f"cannot start: {reason}")

    async def open(self, coords: list[EccCoordinator], configs: dict[str, str], *,
                   options: dict | None = None, user_id: int | None = None) -> RunMetadata:
        """Reserve the next run for ``coords``, with its coverage and the metadata the
        Start was given (``options``: title, class, comment, limits, auto_restart);
        raises StartRefused."""
        coverage = await self.db.run(_initial_coverage, [c.info.pk for c in coords])
        try:
            run = await self.db.reserve_run_with_loaded(
                configs, [c.info.pk for c in coords], coverage=coverage,
                options=options or {}, user_id=user_id)
        except RuntimeError as exc:
            raise StartRefused(f"cannot start: {exc}") from None
        self._opened(run, coords)
        return run

    def _opened(self, run: RunMetadata, coords: Iterable[EccCoordinator]) -> None:
        self.open_run_id = run.pk
        self.members = {c.info.pk for c in coords}
        self._closing = False
        self._finishing_start = None
        self._quiet_since.clear()
        # Alarms are once per run: the last run's keys are done with (and stay bounded).
        self._alarmed = {key for key in self._alarmed if key[0] in (0, run.pk)}
        if len(self._alarmed) > 1000:
            self._alarmed.clear()

    async def started(self, run: RunMetadata) -> None:
        """Every board of the run confirmed Start."""
        await self.db.update_run(run.pk, status=RunMetadata.Status.RUNNING,
                                 start_datetime=timezone.now())
        await self.db.event("info", "run control", f"run {run.run_number} started", run.pk)

    async def aborted(self, run: RunMetadata, reason: str) -> None:
        """The Start failed: the run is recorded aborted (its number is never reused)."""
        self.open_run_id, self.members = None, set()
        stopped = timezone.now()
        await self.db.update_run(run.pk, status=RunMetadata.Status.ABORTED,
                                 stop_datetime=stopped, reason=reason)
        await self._end_coverage(run.pk, stopped)
        await self.db.event("error", "run control",
                            f"run {run.run_number} aborted: {reason}", run.pk)
        await self.filer_wanted(run)

    async def set_status(self, status: str) -> RunMetadata | None:
        """Record Paused or Running (Resume) on the open run, and the time spent Paused
        (live time excludes it); return the run."""
        run = await self.db.open_run()
        if run is not None:
            await self.db.run(_set_status, run.pk, status)
        return run

    # Stop and closing -------------------------------------------------------------
    async def stopping(self) -> RunMetadata | None:
        """Our Stop begins: the run is Stopping, and boards leaving Running is expected."""
        run = await self.db.open_run()
        if run is not None:
            await self.db.update_run(run.pk, status=RunMetadata.Status.STOPPING)
        return run

    async def close(self, run: RunMetadata, reason: str = "", *, alarm: str = "",
                    user_id: int | None = None) -> None:
        """Close the run (Stopped), end its coverage and hand it to the filer.

        ``alarm``, when given, is raised as why the run closed without our Stop;
        ``user_id`` is who stopped it.
        """
        if self.open_run_id == run.pk:
            self.open_run_id, self.members = None, set()
        stopped = timezone.now()
        # One write: a reader never sees it stopped without its reason.
        await self.db.run(_set_status, run.pk, RunMetadata.Status.STOPPED,
                          stop_datetime=stopped, reason=reason, stopped_by_id=user_id)
        await self._end_coverage(run.pk, stopped)
        if alarm:
            await self.alarm(run.pk, "run control", "closed", f"run {run.run_number} closed: "
                             f"{alarm}")
        await self.db.event("info", "run control", f"run {run.run_number} stopped", run.pk)
        await self.filer_wanted(run)

    async def filer_wanted(self, run: RunMetadata) -> None:
        """File a closed run in the background (the filer waits for its data to settle)."""
        self.spawn(self.filer.file(run))

    # Observation: what the coordinators and the router checks see ---------------------
    def observe(self, coord: EccCoordinator, reply: StateReply | None,
                previous: State | None) -> None:
        """Called on every poll: raise the alarms of a board falling out of the run,
        and close the run when none of its boards runs any more."""
        run_id = self.open_run_id
        if run_id is None or coord.info.pk not in self.members or self.moving:
            return
        if coord.info.excluded or not coord.info.enabled:
            return
        if self._finishing_start is not None:
            self._finish_recovered_start()
        if reply is None and previous in LIVE:
            self.spawn(self.alarm(run_id, coord.name, "offline", f"{coord.name} went offline "
                                  f"during the run: {coord.last_exception}"))
        elif reply is not None and previous in LIVE and reply.state not in LIVE \
                and not reply.transitioning:
            self.spawn(self.alarm(run_id, coord.name, "state", f"{coord.name} fell out of "
                                  f"Running during the run: now {reply.state.label}"))
        self._close_if_nothing_runs()

    def _finish_recovered_start(self) -> None:
        """Mark a run recovered in Starting as started once all its boards run."""
        boards = self.of_run()
        if boards and all(c.online and c.state in LIVE and not c.data.transitioning
                          for c in boards):
            run, self._finishing_start = self._finishing_start, None
            self.spawn(self._started_after_recovery(run))

    async def _started_after_recovery(self, run: RunMetadata) -> None:
        await self.started(run)
        await self.db.event("warning", "run control", f"run {run.run_number} was starting "
                            "when the engine stopped; its boards finished starting: the run "
                            "goes on", run.pk)

    def _close_if_nothing_runs(self) -> None:
        """Close the open run when every board of it is known not to run any more."""
        if self._closing or self.open_run_id is None or self.moving:
            return
        boards = self.of_run()
        if any(c.state in LIVE or not c.online or (c.data and c.data.transitioning)
               for c in boards):
            return  # one still runs, or might (offline: its boards may still acquire)
        self._closing = True
        states = ", ".join(f"{c.name} {c.state.label}" for c in sorted(boards,
                                                                       key=lambda c: c.name))
        why = (f"no board of the run is Running any more ({states})" if boards
               else "every board of the run was excluded")
        self.spawn(self._close_open(why))

    async def _close_open(self, why: str) -> None:
        run = await self.db.open_run()
        if run is None or run.pk != self.open_run_id:
            return
        await self.close(run, why, alarm=why)

    async def router_checked(self, router: RouterInfo, previous: RouterHealth | None,
                             health: RouterHealth) -> None:
        """Called after every router check: outages and silence during the run."""
        run_id = self.open_run_id
        if run_id is None:
            if health.online and not health.clean and health.workdir:
                await self._note_unattributed(router, health)
            return
        taking_part = await self.db.run(_router_in_run, run_id, router.name)
        if not taking_part:
            return
        was_online = previous is None or previous.online
        if was_online and not health.online:
            await self._outage(run_id, router.name, begins=True)
            await self.alarm(run_id, router.name, "offline", f"data router {router.name} went "
                             f"offline during the run: {health.error or 'its process is gone'}")
        elif not was_online and health.online:
            await self._outage(run_id, router.name, begins=False)
        await self._watch_silence(run_id, router, health)

    async def _watch_silence(self, run_id: int, router: RouterInfo,
                             health: RouterHealth) -> None:
        running = all(c.state == State.RUNNING for c in self.of_run()) and self.of_run()
        if not running or not health.online or health.rate > 0:
            self._quiet_since.pop(router.pk, None)
            return
        since = self._quiet_since.setdefault(router.pk, time.monotonic())
        quiet = time.monotonic() - since
        if quiet >= NO_DATA_ALARM_SECONDS:
            await self.alarm(run_id, router.name, "silent", f"data router {router.name} has "
                             f"received no data for {quiet:.0f} s while the run is Running")

    async def alarm(self, run_id: int | None, source: str, kind: str, message: str) -> None:
        """Raise an alarm once per run, source and kind."""
        key = (run_id or 0, source, kind)
        if key in self._alarmed:
            return
        self._alarmed.add(key)
        await self.db.event("alarm", source, message, run_id)

    # Data written while no run was open -------------------------------------------------
    async def _note_unattributed(self, router: RouterInfo, health: RouterHealth) -> None:
        """Files on a router while no run is open and every run is filed belong to no
        run: record them for the operator's choice (they block Start until then)."""
        if await self.db.run(_unfiled_run) is not None:
            return  # the filer's: they may be the last run's
        try:
            files = await self.routers.host(router).list_files(health.workdir)
        except RemoteError as exc:
            log.warning("listing %s's unattributed files failed: %s", router.name, exc)
            return
        if files:
            new = await self.db.run(_note_unattributed, router.pk,
                                    [{"name": f.name, "size": f.size} for f in files])
            if new:
                await self.alarm(None, router.name, f"unattributed {new}", f"{len(files)} "
                                 f"file(s) on data router {router.name} were written while "
                                 "no run was open: choose on the status page where they go")

    async def settle_unattributed(self) -> None:
        """Move unattributed files as the operator decided: into a run, or aside."""
        for record in await self.db.run(_decided_unattributed):
            router = next((r for r in await self.routers.routers()
                           if r.pk == record.router_id), None)
            if router is None:
                continue
            host = self.routers.host(router)
            try:
                workdir = await self.routers.workdir(router)
                if record.decision == UnattributedData.Decision.RUN:
                    result = await host.file_run(workdir, record.experiment.name,
                                                 record.run.run_number)
                else:
                    stamp = record.found.astimezone().strftime("%Y-%m-%dT%H-%M-%S")
                    result = await host.file_run(workdir, record.experiment.name, None,
                                                 folder=("unattributed", stamp))
            except RemoteError as exc:
                if record.error != str(exc):
                    await self.db.run(_unattributed_failed, record.pk, str(exc))
                    await self.db.event("error", router.name, "moving the unattributed files "
                                        f"failed (retried): {exc}")
                continue
            await self.db.run(_unattributed_settled, record.pk, result)

    # Exclusion ------------------------------------------------------------------------
    async def excluded(self, kind: str, name: str, reason: str, *, included: bool = False):
        """Record an exclusion (or the end of one) of a board or router on the open run."""
        if self.open_run_id is not None:
            await self.db.run(_record_exclusion, self.open_run_id, kind, name, reason,
                              included)
        if not included:
            self._close_if_nothing_runs()

    async def _outage(self, run_id: int, router: str, *, begins: bool) -> None:
        await self.db.run(_record_outage, run_id, router, begins)

    async def _end_coverage(self, run_id: int, at: datetime) -> None:
        await self.db.run(_end_coverage, run_id, at.isoformat())

    # Recovery -------------------------------------------------------------------------
    async def recover(self) -> None:
        """Reconcile the open run left by a previous engine with what the servers do."""
        run = await self.db.open_run()
        live = [c for c in self.participants() if c.online and c.state in LIVE]
        starting = [c for c in self.participants() if c.online and c.data
                    and c.data.transitioning and c.state == State.READY]
        if run is None:
            if live:
                await self._adopt_orphans(live)
            return
        members = await self.db.run(_members_of, run) or {c.info.pk for c in
                                                          self.participants()}
        self._opened(run, [c for c in self.coordinators.values() if c.info.pk in members])
        mine = [c for c in live if c.info.pk in members]
        if run.status == RunMetadata.Status.STARTING:
            if mine and not starting:
                await self._started_after_recovery(run)
            elif not starting:
                await self.aborted(run, "the engine restarted while the run started, and no "
                                   "board is running")
                return
            else:  # boards still starting: marked started when they all run
                self._finishing_start = run
        elif run.status == RunMetadata.Status.STOPPING and not mine:
            await self.close(run, "the engine restarted while the run stopped")
            return
        elif run.status == RunMetadata.Status.STOPPING:
            await self.db.update_run(run.pk, status=RunMetadata.Status.RUNNING)
        log.info("resuming with open run %s", run)
        for coord in self.coordinators.values():
            # Every board of the run should be running: any that is not now is an alarm.
            self.observe(coord, coord.data if coord.online else None, State.RUNNING)

    async def _adopt_orphans(self, live: list[EccCoordinator]) -> None:
        """Boards running with no open run: give them a run, so their data has one."""
        configs = await self.db.run(_selected_configs, [c.info.pk for c in live])
        coverage = await self.db.run(_initial_coverage, [c.info.pk for c in live])
        try:
            run = await self.db.reserve_run_with_loaded(configs, [c.info.pk for c in live],
                                                        coverage=coverage)
        except RuntimeError as exc:
            await self.db.event("alarm", "run control", f"{_names(live)} run with no open "
                                f"run, and none could be opened: {exc}")
            return
        self._opened(run, live)
        note = (f"adopted: {_names(live)} were found running with no open run when the "
                "engine started; the start time is when they were found")
        await self.db.update_run(run.pk, status=RunMetadata.Status.RUNNING,
                                 start_datetime=timezone.now(), problems=[note],
                                 incomplete=True)
        await self.alarm(run.pk, "run control", "adopted", f"run {run.run_number} {note}")


# Queries, run on the engine's database thread -------------------------------------------
def _unfiled_run() -> RunMetadata | None:
    return (RunMetadata.objects.filter(filed=False, status__in=[RunMetadata.Status.STOPPED,
                                                                 RunMetadata.Status.ABORTED])
            .order_by("created").first())


def _waiting_unattributed() -> list[str]:
    return [f"{len(u.files)} file(s) written on {u.router.name} while no run was open"
            for u in UnattributedData.objects.select_related("router")
            .filter(decision=UnattributedData.Decision.PENDING)]


def _note_unattributed(router_pk: int, files: list[dict]) -> int | None:
    """Record (or bring up to date) a router's files awaiting a choice; the new record's
    primary key, or None when one was waiting already."""
    unsettled = UnattributedData.objects.filter(router_id=router_pk, settled_at=None)
    if unsettled.exists():  # waiting for a choice, or decided and about to be moved
        unsettled.filter(decision=UnattributedData.Decision.PENDING).update(files=files)
        return None
    experiment = Experiment.active()
    if experiment is None:
        return None
    return UnattributedData.objects.create(router_id=router_pk, experiment=experiment,
                                           files=files).pk


def _decided_unattributed() -> list[UnattributedData]:
    return list(UnattributedData.objects.select_related("experiment", "run")
                .exclude(decision=UnattributedData.Decision.PENDING)
                .filter(settled_at=None))


def _unattributed_failed(pk: int, error: str) -> None:
    UnattributedData.objects.filter(pk=pk).update(error=error)


def _unattributed_settled(pk: int, result) -> None:
    """Record the move; a run that received late files says so among its problems."""
    from django.db import transaction

    moved = [{"name": f.name, "size": f.size} for f in result.moved]
    with transaction.atomic():
        record = UnattributedData.objects.select_related("run", "router", "decided_by").get(
            pk=pk)
        UnattributedData.objects.filter(pk=pk).update(settled_at=timezone.now(), error="",
                                                      files=moved or record.files)
        who = record.decided_by.get_username() if record.decided_by else "an operator"
        if record.run is not None:
            run = RunMetadata.objects.select_for_update().get(pk=record.run.pk)
            run.problems = [*run.problems, f"{len(moved)} file(s) of {record.router.name} "
                            "written while no run was open were filed into this run by "
                            f"{who}" + (f": {record.note}" if record.note else "")]
            manifest = run.manifest or {}
            manifest.setdefault("added_later", []).extend(
                {"router": record.router.name, **file} for file in moved)
            RunMetadata.objects.filter(pk=run.pk).update(problems=run.problems,
                                                         manifest=manifest)


def _set_status(pk: int, status: str, **more) -> None:
    """Set a run's status (and ``more`` fields), counting the time it spends Paused."""
    from django.db import transaction

    now = timezone.now()
    with transaction.atomic():
        run = RunMetadata.objects.select_for_update().get(pk=pk)
        fields: dict = {"status": status, **more}
        if status == RunMetadata.Status.PAUSED and run.paused_since is None:
            fields["paused_since"] = now
        elif status != RunMetadata.Status.PAUSED and run.paused_since is not None:
            fields["paused_seconds"] = run.paused_seconds + (now - run.paused_since
                                                             ).total_seconds()
            fields["paused_since"] = None
        RunMetadata.objects.filter(pk=pk).update(**fields)


def _routers_of(pks: list[int]) -> set[str]:
    """The names of the routers the servers' data sources send to, not excluded."""
    return set(DataRouter.objects.filter(data_sources__ecc_server_id__in=pks, excluded=False)
               .values_list("name", flat=True))


def _initial_coverage(pks: list[int]) -> dict:
    """Who takes part in a run starting now, and who is excluded (since when, why)."""
    now = _now()

    def entry(row, taking_part: bool) -> dict:
        excluded = [{"from": row.excluded_at.isoformat() if row.excluded_at else now,
                     "to": None, "reason": row.excluded_reason}] if row.excluded else []
        return {"took_part": taking_part, "from": now if taking_part else None, "to": None,
                "excluded": excluded}

    boards = {s.name: entry(s, s.pk in pks) for s in ECCServer.objects.filter(enabled=True)}
    routers = {}
    for router in DataRouter.objects.filter(data_sources__ecc_server__enabled=True).distinct():
        serves = router.data_sources.filter(ecc_server_id__in=pks).exists()
        routers[router.name] = {**entry(router, serves and not router.excluded), "outages": []}
    return {"boards": boards, "routers": routers}


def _members_of(run: RunMetadata) -> set[int]:
    boards = (run.coverage or {}).get("boards", {})
    names = [name for name, entry in boards.items() if entry.get("took_part")]
    return set(ECCServer.objects.filter(name__in=names).values_list("pk", flat=True))


def _selected_configs(pks: list[int]) -> dict[str, str]:
    return {s.name: str(s.selected_config) if s.selected_config else ""
            for s in ECCServer.objects.select_related("selected_config").filter(pk__in=pks)}


def _router_in_run(run_id: int, name: str) -> bool:
    run = RunMetadata.objects.filter(pk=run_id).only("coverage").first()
    entry = ((run.coverage or {}).get("routers", {}).get(name) if run else None) or {}
    return bool(entry.get("took_part")) and not any(e.get("to") is None
                                                    for e in entry.get("excluded", []))


def _edit_coverage(run_id: int, change: Callable[[dict], None]) -> None:
    from django.db import transaction

    with transaction.atomic():
        run = RunMetadata.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return
        coverage = run.coverage or {}
        change(coverage)
        RunMetadata.objects.filter(pk=run_id).update(coverage=coverage)


def _record_exclusion(run_id: int, kind: str, name: str, reason: str, included: bool) -> None:
    def change(coverage: dict) -> None:
        entry = coverage.setdefault(kind, {}).setdefault(
            name, {"took_part": False, "from": None, "to": None, "excluded": []})
        spans = entry.setdefault("excluded", [])
        if included:
            for span in spans:
                if span.get("to") is None:
                    span["to"] = _now()
        elif not any(span.get("to") is None for span in spans):
            spans.append({"from": _now(), "to": None, "reason": reason})
    _edit_coverage(run_id, change)


def _record_outage(run_id: int, router: str, begins: bool) -> None:
    def change(coverage: dict) -> None:
        entry = coverage.setdefault("routers", {}).setdefault(
            router, {"took_part": True, "from": None, "to": None, "excluded": []})
        outages = entry.setdefault("outages", [])
        if begins:
            outages.append({"from": _now(), "to": None})
        elif outages and outages[-1].get("to") is None:
            outages[-1]["to"] = _now()
    _edit_coverage(run_id, change)


def _end_coverage(run_id: int, now: str) -> None:
    """Close every open span of the run's coverage at ``now``, its end."""
    def change(coverage: dict) -> None:
        for group in ("boards", "routers"):
            for entry in coverage.get(group, {}).values():
                if entry.get("took_part") and entry.get("to") is None:
                    entry["to"] = now
                for span in (*entry.get("excluded", []), *entry.get("outages", [])):
                    if span.get("to") is None:
                        span["to"] = now
    _edit_coverage(run_id, change)

