"""Timed runs against the emulators: a run stops by itself at its duration (live time) and
restarts into a new run with the same metadata; a limit changed or removed during the run;
Paused time not counted; an event limit estimated from the data of the run before."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User

from attpcdaq.daq import limits
from attpcdaq.daq.models import Command, ECCServer, Event, RunClass, RunEdit, RunMetadata
from attpcdaq.engine.timed import LIMIT_LABEL, RESTART_LABEL

from .conftest import wait_for
from .test_engine import run_command

pytestmark = pytest.mark.django_db(transaction=True)
RUNNING = RunMetadata.Status.RUNNING


def start_command(**options) -> Command:
    """A Start with options, as the services queue it after the Start dialog."""
    return Command.objects.create(kind=Command.Kind.TRANSITION, target=ECCServer.RUNNING,
                                  label="Start a run", options=options)


async def start(**options) -> RunMetadata:
    command = await sync_to_async(start_command)(**options)
    done = await wait_for(lambda: Command.objects.filter(
        pk=command.pk, status__in=["done", "failed"]).first(), 20, "the Start")
    assert (done.status, done.error) == ("done", "")
    return await sync_to_async(RunMetadata.objects.select_related("run_class").get)(
        pk=done.run_id)


def run(number: int) -> RunMetadata | None:
    return RunMetadata.objects.select_related("run_class").filter(run_number=number).first()


def operator() -> User:
    user = User.objects.create_user("shifter")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return User.objects.get(pk=user.pk)


async def test_a_timed_run_stops_by_itself_and_restarts_with_the_same_metadata(system):
    # Seeded by a migration, but a transactional test before this one flushed them.
    for name in ("Beam", "Pulser"):
        await sync_to_async(RunClass.objects.get_or_create)(name=name)
    await system(2)
    assert (await run_command("ready")).status == "done"
    first = await start(title="Cosmics ünder <b>test</b>", run_class="Beam",
                        comment="overnight", limit_seconds=2.0, auto_restart=True)
    assert (first.limit_seconds, first.auto_restart, first.status) == (2.0, True, RUNNING)
    stopped = await wait_for(lambda: RunMetadata.objects.filter(
        pk=first.pk, status="stopped").first(), 15, "run 0 stopped at its limit")
    # Stopped by the engine through the normal path: a command recorded, no user.
    stop = await wait_for(lambda: Command.objects.filter(
        label=LIMIT_LABEL, status__in=["done", "failed"]).first(), 10, "the engine's Stop")
    assert (stop.status, stop.user_id, stop.run_id, stop.error) == ("done", None, first.pk, "")
    assert stopped.stopped_by_id is None
    live = limits.live_seconds(stopped)
    assert 2.0 <= live < 2.0 + 3.0  # a poll interval and a Stop past the limit at most
    said = await sync_to_async(lambda: list(Event.objects.filter(run=first).values_list(
        "message", flat=True)))()
    assert any("reached its duration limit (0:00:02 live time)" in m for m in said), said

    # Once filed, the next run starts by itself with the same metadata and limits.
    second = await wait_for(lambda: RunMetadata.objects.select_related("run_class").filter(
        run_number=1, status=RUNNING).first(), 20, "run 1 started by itself")
    assert await sync_to_async(lambda: RunMetadata.objects.get(pk=first.pk).filed)()
    assert (second.title, second.run_class.name, second.comment) == (
        "Cosmics ünder <b>test</b>", "Beam", "overnight")
    assert (second.limit_seconds, second.auto_restart, second.started_by_id) == (2.0, True, None)
    # The run is marked Running a moment before its command is recorded done.
    restart = await wait_for(lambda: Command.objects.filter(label=RESTART_LABEL,
                                                            status="done").first(), 10,
                             "the restart command done")
    assert restart.options["restart_of"] == first.pk and restart.run_id == second.pk

    # The limit removed during the run: it runs on past it, until an operator stops it.
    user = await sync_to_async(operator)()
    said = await sync_to_async(limits.set_limits)(user, second, {"limit_seconds": None})
    assert said == ["duration limit 0:00:02 → none"]
    # Past the old limit by the wall clock, the engine checking meanwhile.
    await asyncio.sleep(max(0.0, 3.5 - (time.time() - second.start_datetime.timestamp())))
    assert (await sync_to_async(run)(1)).status == RUNNING
    assert not await sync_to_async(Command.objects.filter(run=second, label=LIMIT_LABEL)
                                   .exists)()
    edit = await sync_to_async(RunEdit.objects.get)(run=second)
    assert (edit.field, edit.old, edit.new, edit.user_id) == ("limit_seconds", 2.0, None,
                                                              user.pk)
    assert (await run_command("ready")).status == "done"
    await wait_for(lambda: RunMetadata.objects.filter(pk=second.pk, filed=True).exists(), 20,
                   "run 1 filed")
    # An operator's Stop ends the series: no restart, however long one waits for it.
    for _ in range(10):
        await asyncio.sleep(0.2)
        assert not await sync_to_async(RunMetadata.objects.filter(run_number=2).exists)()
    assert await sync_to_async(Command.objects.filter(label=RESTART_LABEL).count)() == 1


async def test_a_data_limit_set_during_the_run_stops_it_and_shows_what_is_left(system):
    await system(2)
    assert (await run_command("ready")).status == "done"
    opened = await start(limit_seconds=600.0, limit_bytes=10**12)
    # The engine measures the data so far and the page reads what is left from it.
    fresh = await wait_for(lambda: (r := run(0)) and ((r.coverage or {}).get("progress") or {})
                           .get("bytes", 0) > 0 and r, 15, "data measured")
    left = limits.left(fresh)
    assert 0 < left.seconds <= 600 and left.until is not None
    assert 0 < left.bytes < 10**12
    written = fresh.coverage["progress"]["bytes"]
    user = await sync_to_async(operator)()
    said = await sync_to_async(limits.set_limits)(user, opened, {"limit_bytes": written + 1})
    assert said == [f"data limit 1.0 TB → {limits.size_text(written + 1)}"]
    stopped = await wait_for(lambda: RunMetadata.objects.filter(pk=opened.pk, status="stopped")
                             .first(), 15, "stopped at the data limit")
    assert limits.live_seconds(stopped) < 600
    message = await sync_to_async(lambda: Event.objects.filter(
        run=opened, message__contains="reached its data limit").get().message)()
    assert "the engine stops it" in message and "start the next" not in message
    assert limits.left(stopped) is None  # closed: nothing is left to show
    # Its limits are history now.
    with pytest.raises(limits.Conflict):
        await sync_to_async(limits.set_limits)(user, stopped, {"limit_bytes": None})
    await wait_for(lambda: RunMetadata.objects.filter(pk=opened.pk, filed=True).exists(), 20)
    for _ in range(5):
        await asyncio.sleep(0.2)
    assert not await sync_to_async(Command.objects.filter(label=RESTART_LABEL).exists)()


async def test_paused_time_does_not_count_towards_the_duration_limit(system):
    await system(1)
    assert (await run_command("ready")).status == "done"
    opened = await start(limit_seconds=2.0)
    assert (await run_command("paused")).status == "done"
    began = opened.start_datetime.timestamp()
    await asyncio.sleep(max(0.0, 3.0 - (time.time() - began)))  # past it by the clock, Paused
    paused = await sync_to_async(run)(0)
    assert paused.status == RunMetadata.Status.PAUSED
    assert limits.left(paused).until is None  # no countdown while Paused
    assert not await sync_to_async(Command.objects.filter(label=LIMIT_LABEL).exists)()
    assert (await run_command("running")).status == "done"  # Resume
    stopped = await wait_for(lambda: RunMetadata.objects.filter(pk=opened.pk, status="stopped")
                             .first(), 15, "stopped at its live time")
    assert stopped.paused_seconds > 0.5
    assert limits.live_seconds(stopped) >= 2.0
    assert (stopped.stop_datetime - stopped.start_datetime).total_seconds() >= 3.0


async def test_an_event_limit_is_estimated_from_the_run_before(system):
    await system(1)
    assert (await run_command("ready")).status == "done"
    # Without a filed run to learn events per byte from, the limit cannot act yet.
    first = await start(limit_events=5)
    fresh = await wait_for(lambda: (r := run(0)) and (r.coverage or {}).get("progress") and r,
                           10, "progress written")
    assert fresh.coverage["progress"]["events"] is None
    assert "known once this run is filed" in limits.left(fresh).events_unknown
    # It runs on past 5 events (the data grows well beyond what it was at first).
    seen = fresh.coverage["progress"]["bytes"]
    await wait_for(lambda: run(0).coverage["progress"]["bytes"] > 4 * max(seen, 1000), 15,
                   "more data")
    assert (await run_command("ready")).status == "done"
    assert not await sync_to_async(Command.objects.filter(label=LIMIT_LABEL).exists)()
    filed = await wait_for(lambda: RunMetadata.objects.filter(pk=first.pk, filed=True).first(),
                           20, "run 0 filed")
    events = max(b["events"] for b in filed.manifest["events"].values())
    assert events > 5  # it ran past its limit, which could not act
    # The next run learns from it: about 20 events a second, stopped at about 10.
    second = await start(limit_events=10)
    await wait_for(lambda: RunMetadata.objects.filter(pk=second.pk, status="stopped").exists(),
                   15, "stopped at the estimated event limit")
    message = await sync_to_async(lambda: Event.objects.filter(
        run=second, message__contains="reached its event limit").get().message)()
    assert "estimated from the data" in message
    filed = await wait_for(lambda: RunMetadata.objects.filter(pk=second.pk, filed=True).first(),
                           20, "run 1 filed")
    counted = max(b["events"] for b in filed.manifest["events"].values())
    assert 10 <= counted < 60, counted
