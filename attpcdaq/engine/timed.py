"""Timed runs: the engine stops a run at its limits, and restarts it when asked.

A run may carry a duration limit (``limit_seconds``: live time, i.e. time Running,
Paused time not counted), a data limit (``limit_bytes``: the bytes of the run's
routers, summed) and an event limit (``limit_events``, per CoBo). Checked every
poll interval; when one is reached the engine queues a system Stop as any operator
would (``Stop the run (limit reached)``, user empty: the engine), so the run ends by
the normal path and the command table records it. The run overshoots its limit by
at most a poll interval and the time Stop takes.

**Data so far** is what the router watcher last found in the routers' working
directories (:attr:`RouterHealth.bytes`): Start needs them clean, so it is the
run's data. It is written on the run (``coverage["progress"]``, ``{"bytes",
"events", "events_unknown", "at"}``) while a data or event limit is set, for the
status page to show what is left.

**Events** are only counted from the frames' headers once the run is filed; the
routers' files are not read during the run (that would compete with the writers
for the disk). So an event limit is *estimated* from the bytes: the fullest
router's bytes times the events per byte of the latest filed run of the
experiment (its fullest CoBo's events over its fullest router's bytes), which
holds while the configuration (readout mode, zero suppression) stays the same.
Without such a run the event limit cannot act during the run, and the status page
says so; the draft log entry and the run page give the exact counts afterwards.

**Automatic restart.** A run stopped by its limit with ``auto_restart`` set is
followed, once filed (Start needs that), by a Start queued by the engine whose
options copy the run's title, class, comment, limits and restart; the options
carry ``restart_of`` (the run's primary key) so that a run is restarted once at
most, also when that Start fails (its error is recorded on the command, and an
event, as for any command). An operator's Stop ends the series.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from attpcdaq.daq.limits import describe, live_seconds
from attpcdaq.daq.models import Command, ECCServer, Event, Experiment, RunMetadata
from attpcdaq.daq.services import QUICK_KINDS, STOP_LABEL

from .database import EngineDatabase
from .datarouters import RouterWatcher

__all__ = ["LIMIT_LABEL", "RESTART_LABEL", "RunTimer", "reached"]

log = logging.getLogger(__name__)
#: The label of the Stop the engine queues at a limit (it begins as every Stop's).
LIMIT_LABEL = f"{STOP_LABEL} (limit reached)"
#: The label of the Start of an automatic restart.
RESTART_LABEL = "Start a run (automatic restart)"
_LIVE = (RunMetadata.Status.RUNNING, RunMetadata.Status.PAUSED)
_NO_ESTIMATE = ("no earlier run of the experiment filed with events to estimate them "
                "from the data: known once this run is filed")


def reached(run: RunMetadata, progress: dict, now: datetime | None = None) -> str:
    """The limit ``run`` has reached, in words ("" when none): ``duration limit 0:10:00``."""
    if run.limit_seconds and run.status == RunMetadata.Status.RUNNING \
            and live_seconds(run, now) >= run.limit_seconds:
        return f"duration limit ({describe('limit_seconds', run.limit_seconds)} live time)"
    if run.limit_bytes and progress.get("bytes", 0) >= run.limit_bytes:
        return (f"data limit ({describe('limit_bytes', run.limit_bytes)}: "
                f"{describe('limit_bytes', progress['bytes'])} written)")
    events = progress.get("events")
    if run.limit_events and events is not None and events >= run.limit_events:
        return (f"event limit ({run.limit_events:,} events per CoBo: about {events:,}, "
                "estimated from the data)")
    return ""


class RunTimer:
    """Checks the open run's limits and restarts a run stopped by its limit."""

    def __init__(self, db: EngineDatabase, routers: RouterWatcher) -> None:
        self.db = db
        self.routers = routers
        self._written: dict[int, dict] = {}
        self._ratios: dict[int, float | None] = {}

    async def check(self) -> None:
        """One round: the open run's limits, then a restart that is due."""
        run = await self.db.run(_open_limited_run)
        if run is not None:
            progress = await self._progress(run)
            if (run.limit_bytes or run.limit_events) and \
                    _sans_time(progress) != _sans_time(self._written.get(run.pk, {})):
                await self.db.run(_write_progress, run.pk, progress)
                self._written = {run.pk: progress}
            why = reached(run, progress)
            if why:
                await self.db.run(_queue_stop, run.pk, why)
        await self.db.run(_restart_if_due)

    async def _progress(self, run: RunMetadata) -> dict:
        """The run's data so far, and its events estimated from it."""
        taking_part = {name for name, entry in ((run.coverage or {}).get("routers") or {})
                       .items() if isinstance(entry, dict) and entry.get("took_part")}
        sizes = [self.routers.health[r.pk].bytes for r in await self.routers.routers()
                 if r.name in taking_part and r.pk in self.routers.health]
        progress: dict = {"bytes": sum(sizes), "events": None, "events_unknown": "",
                          "at": timezone.now().isoformat()}
        if run.limit_events:
            if run.pk not in self._ratios:
                self._ratios = {run.pk: await self.db.run(_events_per_byte, run)}
            ratio = self._ratios[run.pk]
            if ratio is None:
                progress["events_unknown"] = _NO_ESTIMATE
            else:
                progress["events"] = int(max(sizes, default=0) * ratio)
        return progress


def _sans_time(progress: dict) -> dict:
    return {k: v for k, v in progress.items() if k != "at"}


# On the engine's database thread --------------------------------------------------------

def _open_limited_run() -> RunMetadata | None:
    return (RunMetadata.objects.filter(status__in=_LIVE)
            .exclude(limit_seconds=None, limit_bytes=None, limit_events=None)
            .order_by("-created").first())


def _write_progress(pk: int, progress: dict) -> None:
    with transaction.atomic():
        run = RunMetadata.objects.select_for_update().filter(pk=pk).first()
        if run is None:
            return
        coverage = run.coverage if isinstance(run.coverage, dict) else {}
        coverage["progress"] = progress
        RunMetadata.objects.filter(pk=pk).update(coverage=coverage)


def _events_per_byte(run: RunMetadata) -> float | None:
    """Events per byte of the latest filed run of ``run``'s experiment that has both."""
    earlier = (RunMetadata.objects.filter(experiment_id=run.experiment_id, filed=True,
                                          status=RunMetadata.Status.STOPPED,
                                          run_number__lt=run.run_number)
               .order_by("-run_number").only("manifest")[:20])
    for other in earlier:
        manifest = other.manifest if isinstance(other.manifest, dict) else {}
        events = [b.get("events", 0) for b in (manifest.get("events") or {}).values()
                  if isinstance(b, dict)]
        sizes = [r.get("bytes", 0) for r in (manifest.get("routers") or {}).values()
                 if isinstance(r, dict)]
        if max(events, default=0) > 0 and max(sizes, default=0) > 0:
            return max(events) / max(sizes)
    return None


def _queue_stop(pk: int, why: str) -> Command | None:
    """Queue the engine's Stop of run ``pk`` at a limit, once (None when not queued)."""
    from attpcdaq.daq.services import active_stop

    with transaction.atomic():
        run = RunMetadata.objects.select_for_update().filter(pk=pk).first()
        if run is None or run.status not in _LIVE:
            return None
        if Command.objects.filter(run=run, label=LIMIT_LABEL).exists() or active_stop():
            return None  # ours is on its way, or an operator's Stop is
        command = Command.objects.create(kind=Command.Kind.TRANSITION,
                                         target=ECCServer.READY, label=LIMIT_LABEL, run=run)
        then = " and start the next" if run.auto_restart else ""
        Event.objects.create(level=Event.Level.INFO, source="run control", run=run,
                             message=f"run {run.run_number} reached its {why}: the engine "
                             f"stops it{then}")
    log.info("run %s reached its %s: stopping it", run.run_number, why)
    return command


def _restart_if_due() -> Command | None:
    """Queue the Start that follows a run stopped by its limit with ``auto_restart``."""
    experiment = Experiment.active()
    if experiment is None:
        return None
    run = experiment.runs.select_related("run_class").order_by("-run_number").first()
    if run is None or not run.auto_restart or run.status != RunMetadata.Status.STOPPED \
            or not run.filed:
        return None
    if not Command.objects.filter(run=run, label=LIMIT_LABEL).exists():
        return None  # stopped by someone: the series ends
    with transaction.atomic():
        if Command.objects.filter(kind=Command.Kind.TRANSITION, target=ECCServer.RUNNING,
                                  options__restart_of=run.pk).exists():
            return None  # asked already (and perhaps refused: once)
        if Command.objects.filter(status__in=Command.ACTIVE).exclude(
                kind__in=QUICK_KINDS).exists():
            return None  # after what is asked now
        options = {"title": run.title, "comment": run.comment,
                   "run_class": run.run_class.name if run.run_class else "",
                   "limit_seconds": run.limit_seconds, "limit_bytes": run.limit_bytes,
                   "limit_events": run.limit_events, "auto_restart": True,
                   "restart_of": run.pk}
        command = Command.objects.create(kind=Command.Kind.TRANSITION,
                                         target=ECCServer.RUNNING, label=RESTART_LABEL,
                                         options=options)
        Event.objects.create(level=Event.Level.INFO, source="run control", run=run,
                             message=f"run {run.run_number} was stopped at its limit and is "
                             "filed: the engine starts the next run with the same metadata "
                             "and limits (automatic restart)")
    return command
