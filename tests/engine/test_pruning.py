"""Bounded tables: events, commands and log reads pruned by age and count, what must stay
staying; the engine prunes by itself, and a failure is recorded once."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from attpcdaq.daq import services
from attpcdaq.daq.models import Command, Event, Experiment, RunMetadata
from attpcdaq.engine.database import EngineDatabase
from attpcdaq.engine.pruning import BATCH, Limits, prune, prune_loop
from attpcdaq.engine.supervisor import Engine

from .conftest import fast_settings, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

DAY = timedelta(days=1)


def event(age: timedelta, level: str = "info", acknowledged: bool = False, **fields) -> Event:
    return Event.objects.create(time=timezone.now() - age, level=level, source="test",
                                message=f"{level} {age}", acknowledged=acknowledged, **fields)


def command(age: timedelta, kind: str = "transition", status: str = "done",
            **fields) -> Command:
    return Command.objects.create(kind=kind, target=4, status=status,
                                  created=timezone.now() - age, **fields)


@pytest.fixture
def run():
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    return RunMetadata.objects.create(experiment=experiment, run_number=1, status="stopped",
                                      created=timezone.now() - 400 * DAY)


def test_old_rows_go_and_what_must_stay_stays(run):
    limits = Limits(max_age=90 * DAY, keep_rows=1000, log_max_age=7 * DAY, log_keep_rows=1000)
    keep = [event(89 * DAY), event(200 * DAY, "alarm"),  # an alarm nobody acknowledged
            event(1 * DAY, "alarm", acknowledged=True),
            command(300 * DAY, run=run),  # the Start of a run
            command(300 * DAY, status="pending"), command(300 * DAY, status="running"),
            command(89 * DAY), command(6 * DAY, "tail_log", result="line\n")]
    gone = [event(91 * DAY), event(200 * DAY, "alarm", acknowledged=True),
            event(91 * DAY, "error", run=run),
            command(91 * DAY), command(91 * DAY, status="failed", error="no"),
            command(8 * DAY, "tail_log", result="line\n" * 200)]
    pruned = prune(limits)
    assert (pruned.events, pruned.commands, pruned.log_reads) == (3, 2, 1)
    left = {(type(r).__name__, r.pk) for r in [*Event.objects.all(), *Command.objects.all()]}
    assert left == {(type(r).__name__, r.pk) for r in keep}
    assert not left & {(type(r).__name__, r.pk) for r in gone}
    assert RunMetadata.objects.filter(pk=run.pk).exists()
    assert prune(limits).total == 0  # nothing more to do


def test_each_table_keeps_its_newest_rows_in_batches(run):
    limits = Limits(max_age=90 * DAY, keep_rows=BATCH + 5, log_max_age=7 * DAY,
                    log_keep_rows=3)
    now = timezone.now()
    total = 2 * BATCH + 20  # more than two batches beyond the limit
    Event.objects.bulk_create([Event(time=now - timedelta(minutes=n), level="info",
                                     source="test", message=str(n)) for n in range(total)])
    oldest_alarm = event(timedelta(minutes=total + 1), "alarm")
    Command.objects.bulk_create([Command(kind="transition", target=4, status="done",
                                         created=now - timedelta(minutes=n))
                                 for n in range(total)])
    started_run = command(timedelta(minutes=total + 1), run=run)
    reads = [command(timedelta(minutes=n), "tail_log", result="x") for n in range(6)]

    pruned = prune(limits, now)
    # The newest rows up to the limit stay, and beyond them what is never pruned: the
    # alarm nobody acknowledged and the command that started a run.
    events = list(Event.objects.order_by("-time"))
    assert len(events) == BATCH + 5 + 1 and events[-1] == oldest_alarm
    assert [e.message for e in events[:-1]] == [str(n) for n in range(BATCH + 5)]
    commands = list(Command.objects.exclude(kind="tail_log").order_by("-created"))
    assert len(commands) == BATCH + 5 + 1 and commands[-1] == started_run
    assert list(Command.objects.filter(kind="tail_log").order_by("-created")) == reads[:3]
    assert (pruned.events, pruned.commands, pruned.log_reads) == (
        total - BATCH - 5, total - BATCH - 5, 3)


def test_the_status_page_sorts_and_the_conditions_are_indexed():
    with connection.cursor() as cursor:
        events = connection.introspection.get_constraints(cursor, Event._meta.db_table)
        commands = connection.introspection.get_constraints(cursor, Command._meta.db_table)
    event_indexes = [c["columns"] for c in events.values() if c["index"]]
    command_indexes = [c["columns"] for c in commands.values() if c["index"]]
    assert ["time"] in event_indexes
    assert ["status", "created"] in command_indexes and ["created"] in command_indexes


async def test_the_engine_prunes_by_itself_and_keeps_beating(settings):
    settings.PRUNE_INTERVAL = 0.2
    settings.PRUNE_AFTER_DAYS = 90
    old = timezone.now() - 100 * DAY
    await sync_to_async(Event.objects.bulk_create)([
        Event(time=old, level="info", source="test", message=str(n)) for n in range(3 * BATCH)])
    alarm = await sync_to_async(event)(200 * DAY, "alarm")
    engine = Engine(fast_settings())
    await engine.start()
    try:
        await wait_for(lambda: list(Event.objects.values_list("pk", flat=True)) == [alarm.pk],
                       10, "the old events pruned")
        assert await sync_to_async(lambda: services.engine_liveness().alive)()
        # New old rows go at the next interval, without a restart.
        await sync_to_async(event)(100 * DAY)
        await wait_for(lambda: Event.objects.count() == 1, 10, "pruned again")
    finally:
        await engine.stop()


async def test_a_pruning_failure_is_recorded_once(settings, caplog):
    settings.PRUNE_INTERVAL = 0.05
    settings.PRUNE_KEEP_ROWS = -1  # a real failure: the ORM refuses a negative slice
    db = EngineDatabase()
    caplog.set_level(logging.ERROR, "attpcdaq.engine.pruning")
    loop = asyncio.create_task(prune_loop(db))
    try:
        deadline = time.monotonic() + 10
        while sum("pruning old records failed" in r.getMessage() for r in caplog.records) < 4:
            assert time.monotonic() < deadline, "prune_loop did not retry"
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await db.close()
    events = await sync_to_async(list)(Event.objects.filter(source="engine"))
    assert len(events) == 1 and events[0].level == "error"
    assert events[0].message.startswith("pruning old records failed: ")
    assert "Negative indexing" in events[0].message
