"""Bounded tables: events, commands and log reads pruned by age and by count.

What is never pruned: runs (this module does not touch them), the commands that
started or stopped a run (``Command.run`` set), commands not finished, and alarms
nobody acknowledged. Everything else goes once it is older than its age limit, or
once its table holds more rows than its count limit (the oldest go first; rows
never pruned count towards the limit but stay). Log reads (``tail_log`` commands,
whose ``result`` holds a log's last lines) have limits of their own, shorter.

Deleted in batches, each its own transaction on the engine's database thread, so
the heartbeat and the commands are never kept waiting long. The columns the
conditions and the status page sort by are indexed: ``Event.time``, and
``Command`` (status, created) and (-created) (migration 0005).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from attpcdaq.daq.models import Command, Event

if TYPE_CHECKING:
    from .database import EngineDatabase

log = logging.getLogger(__name__)

#: Rows deleted per transaction at most.
BATCH = 500


@dataclass(frozen=True)
class Limits:
    """How old and how many rows each table keeps (beyond those never pruned)."""

    max_age: timedelta
    keep_rows: int
    log_max_age: timedelta
    log_keep_rows: int

    @classmethod
    def from_settings(cls) -> Limits:
        """``ATTPCDAQ_PRUNE_AFTER_DAYS`` and friends (see attpcdaq/settings.py)."""
        return cls(timedelta(days=settings.PRUNE_AFTER_DAYS), settings.PRUNE_KEEP_ROWS,
                   timedelta(days=settings.LOG_READS_KEEP_DAYS), settings.LOG_READS_KEEP_ROWS)


@dataclass
class Pruned:
    """How many rows of each kind were deleted."""

    events: int = 0
    commands: int = 0
    log_reads: int = 0

    @property
    def total(self) -> int:
        return self.events + self.commands + self.log_reads

    def add(self, other: Pruned) -> None:
        self.events += other.events
        self.commands += other.commands
        self.log_reads += other.log_reads


@dataclass(frozen=True)
class _Table:
    """One kind of row: all of them (what the count limit counts) and the prunable."""

    rows: QuerySet
    prunable: QuerySet
    time: str


def _tables() -> dict[str, _Table]:
    commands = Command.objects.exclude(kind=Command.Kind.TAIL_LOG)
    log_reads = Command.objects.filter(kind=Command.Kind.TAIL_LOG)
    finished = ~Q(status__in=Command.ACTIVE)
    return {
        "events": _Table(Event.objects.all(),
                         Event.objects.exclude(level=Event.Level.ALARM, acknowledged=False),
                         "time"),
        "commands": _Table(commands, commands.filter(finished, run__isnull=True), "created"),
        "log_reads": _Table(log_reads, log_reads.filter(finished, run__isnull=True),
                            "created"),
    }


def _beyond(table: _Table, keep: int, max_age: timedelta, now: datetime) -> Q:
    """The rows of ``table`` past its limits: older than ``max_age``, or not among the
    newest ``keep``."""
    condition = Q(**{f"{table.time}__lt": now - max_age})
    newest = (table.rows.order_by(f"-{table.time}", "-pk").values_list(table.time, "pk")
              [keep:keep + 1])
    for time, pk in newest:  # the newest row beyond the count: it and all older go
        condition |= Q(**{f"{table.time}__lt": time}) | Q(**{table.time: time, "pk__lte": pk})
    return condition


def _delete_batch(table: _Table, condition: Q) -> int:
    with transaction.atomic():
        pks = list(table.prunable.filter(condition).order_by(table.time, "pk")
                   .values_list("pk", flat=True)[:BATCH])
        if not pks:
            return 0
        # Checked again in the delete: a row that became protected meanwhile stays.
        deleted, _ = table.prunable.filter(condition, pk__in=pks).delete()
        return deleted


def prune_batch(limits: Limits | None = None, now: datetime | None = None) -> Pruned:
    """Delete up to :data:`BATCH` rows of each kind past its limits (blocking)."""
    limits = limits or Limits.from_settings()
    now = now or timezone.now()
    pruned = Pruned()
    for name, table in _tables().items():
        keep, age = ((limits.log_keep_rows, limits.log_max_age) if name == "log_reads"
                     else (limits.keep_rows, limits.max_age))
        setattr(pruned, name, _delete_batch(table, _beyond(table, keep, age, now)))
    return pruned


def prune(limits: Limits | None = None, now: datetime | None = None) -> Pruned:
    """Delete every row past its limits, batch after batch (blocking: shells, tests)."""
    now = now or timezone.now()
    total = Pruned()
    while (pruned := prune_batch(limits, now)).total:
        total.add(pruned)
    return total


async def prune_on(db: EngineDatabase, limits: Limits | None = None) -> Pruned:
    """:func:`prune` on the engine's database thread, one batch per turn of it, so that
    the heartbeat and the command claims queued meanwhile go between batches."""
    now = timezone.now()
    total = Pruned()
    while (pruned := await db.run(prune_batch, limits, now)).total:
        total.add(pruned)
    return total


async def prune_loop(db: EngineDatabase) -> None:
    """Prune at once, then every ``PRUNE_INTERVAL`` seconds, until cancelled.

    A failure is recorded as an event where the page shows it, once per distinct
    error (not once per interval), and pruning goes on at the next interval.
    """
    last_error = ""
    while True:
        try:
            pruned = await prune_on(db)
        except Exception as exc:
            log.exception("pruning old records failed")
            error = f"{type(exc).__name__}: {exc}"
            if error != last_error:
                last_error = error
                try:
                    await db.event("error", "engine", f"pruning old records failed: {error}")
                except Exception:
                    log.exception("cannot record the pruning failure")
        else:
            last_error = ""
            if pruned.total:
                log.info("pruned %d event(s), %d command(s) and %d log read(s)",
                         pruned.events, pruned.commands, pruned.log_reads)
        await asyncio.sleep(settings.PRUNE_INTERVAL)
