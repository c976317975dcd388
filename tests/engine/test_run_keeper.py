"""The run's life when things fail: the run keeper against real emulators and routers.

Each test reproduces one of the failures of issue 8 and shows the new behaviour.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import datetime

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from attpcdaq.daq.models import (
    Command,
    DataRouter,
    ECCServer,
    EngineHeartbeat,
    Event,
    RunMetadata,
    UnattributedData,
)
from attpcdaq.engine.supervisor import Engine
from attpcdaq.get import Operation, State

from .conftest import fast_settings, wait_for
from .test_engine import run_command

pytestmark = pytest.mark.django_db(transaction=True)
EXPERIMENT = "e20009 test"


def alarms(source: str | None = None) -> list[str]:
    events = Event.objects.filter(level="alarm")
    if source:
        events = events.filter(source=source)
    return list(events.order_by("time").values_list("message", flat=True))


def run_row(pk: int | None = None) -> RunMetadata:
    return RunMetadata.objects.get(pk=pk) if pk else RunMetadata.objects.latest("run_number")


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait for an in-process condition, checking every few milliseconds."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the engine's state, no event to wait on
            await asyncio.sleep(0.01)


async def frames_arrive(router, at_least: int = 1) -> None:
    """Wait until the router process has written some data."""
    await wait_for(lambda: sum(p.stat().st_size for p in router.workdir.glob("*.graw"))
                   >= at_least, 10, "data on the router")


async def test_a_run_closes_with_an_alarm_when_its_servers_restart(system, router):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    started = await run_command("running")
    assert started.status == "done"
    await frames_arrive(router)
    for emulated in group.servers:  # new processes: Idle, the boards still acquire
        await emulated.restart()
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=started.run_id,
                                                            status="stopped").first(),
                         10, "the run closed")
    assert run.reason == ("no board of the run is Running any more (CoBo[0] Idle, "
                          "CoBo[1] Idle)")
    closed = await wait_for(lambda: alarms("run control"), 10, "the run's alarm")
    assert closed == [f"run 0 closed: {run.reason}"]
    # The boards' own alarms (fell out of Running, or offline while restarting), each
    # once; a board polled only after the run closed has none of its own.
    boards = await wait_for(lambda: alarms("CoBo[0]") + alarms("CoBo[1]"), 10,
                            "the boards' alarms")
    assert len(set(boards)) == len(boards)
    assert all("during the run" in message for message in boards)
    # Nothing is stuck: the system goes back to Ready (Configure takes the boards over,
    # their old streams end), the run is filed, and the next run starts.
    assert (await run_command("ready")).status == "done"
    await wait_for(lambda: run_row(started.run_id).filed, 30, "the run filed")
    again = await run_command("running")
    assert (again.status, again.error) == ("done", "")
    assert await sync_to_async(lambda: run_row(again.run_id).run_number)() == 1
    assert (await run_command("ready")).status == "done"


async def test_a_router_killed_during_a_run_raises_one_alarm_and_an_outage(
        system, router, more_routers):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    started = await run_command("running")
    assert started.status == "done"
    victim = more_routers(1)[0]
    victim.stop()  # router1, CoBo[1]'s
    await wait_for(lambda: alarms("router1"), 10, "the router's alarm")
    pk = await sync_to_async(lambda: DataRouter.objects.get(name="router1").pk)()
    for _ in range(3):  # three more checks of the dead router: still one alarm
        seen = engine.routers.health[pk]
        await until(lambda seen=seen: engine.routers.health[pk] is not seen)
    assert await sync_to_async(alarms)("router1") == [
        "data router router1 went offline during the run: no dataRouter process listens "
        f"on port {victim.port}"]
    assert (await run_command("ready")).status == "done"
    run = await sync_to_async(run_row)(started.run_id)
    outages = run.coverage["routers"]["router1"]["outages"]
    assert len(outages) == 1 and outages[0]["from"] and outages[0]["to"]
    assert outages[0]["from"] < outages[0]["to"] <= run.stop_datetime.isoformat()
    assert run.coverage["routers"]["router0"]["outages"] == []
    # Filed, it is marked incomplete, the window named (local clock times).
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=started.run_id, filed=True)
                         .first(), 30, "the run filed")
    assert run.incomplete
    start, end = (timezone.localtime(datetime.fromisoformat(outages[0][key]))
                  for key in ("from", "to"))
    assert (f"router router1 was offline during the run from {start:%H:%M:%S} to "
            f"{end:%H:%M:%S}") in run.problems


def queue_exclusion(kind: str, *, server=None, router=None, reason: str = "") -> Command:
    return Command.objects.create(kind=kind, ecc_server=server, data_router=router,
                                  reason=reason)


async def finished(command: Command) -> Command:
    return await wait_for(lambda: Command.objects.filter(
        pk=command.pk, status__in=["done", "failed"]).first(), 10, f"command {command}")


async def test_an_excluded_board_and_router_are_skipped_and_recorded(system, more_routers):
    group, servers, engine = await system(3)
    broken = await sync_to_async(DataRouter.objects.get)(name="router2")
    more_routers(2)[1].stop()  # router2 is dead; CoBo[2] sends to it
    await wait_for(lambda: not DataRouter.objects.get(name="router2").is_online, 10,
                   "router2 offline")
    done = await finished(await sync_to_async(queue_exclusion)(
        "exclude", server=servers[2], reason="its router's disk died"))
    assert (done.status, done.error) == ("done", "")
    done = await finished(await sync_to_async(queue_exclusion)(
        "exclude", router=broken, reason="disk died"))
    assert done.status == "done"
    # Walks and Start skip CoBo[2]; router2 no longer blocks Start.
    assert (await run_command("ready")).status == "done"
    started = await run_command("running")
    assert (started.status, started.error) == ("done", "")
    state = await sync_to_async(lambda: ECCServer.objects.get(pk=servers[2].pk).state)()
    assert state == State.IDLE
    # CoBo[1] is taken out during the run, and put back.
    await finished(await sync_to_async(queue_exclusion)("exclude", server=servers[1],
                                                        reason="noisy AsAd 2"))
    await finished(await sync_to_async(queue_exclusion)("include", server=servers[1]))
    assert (await run_command("ready")).status == "done"
    run = await sync_to_async(run_row)(started.run_id)
    boards, routers = run.coverage["boards"], run.coverage["routers"]
    assert boards["CoBo[0]"]["took_part"] and boards["CoBo[0]"]["excluded"] == []
    assert not boards["CoBo[2]"]["took_part"]
    assert [e["reason"] for e in boards["CoBo[2]"]["excluded"]] == ["its router's disk died"]
    assert boards["CoBo[1]"]["took_part"]
    (span,) = boards["CoBo[1]"]["excluded"]
    assert span["reason"] == "noisy AsAd 2" and span["from"] <= span["to"]
    assert not routers["router2"]["took_part"]
    assert routers["router2"]["excluded"][0]["reason"] == "disk died"
    assert routers["router0"]["took_part"] and routers["router0"]["to"]


async def test_start_is_refused_naming_a_server_without_a_configuration(system):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    await sync_to_async(lambda: ECCServer.objects.filter(pk=servers[1].pk)
                        .update(selected_config=None))()
    # The page refuses such a Start at once; the engine checks again when it runs one.
    command = await finished(await sync_to_async(Command.objects.create)(
        kind="transition", target=State.RUNNING))
    assert command.status == "failed"
    assert command.error.startswith("cannot start: CoBo[1] has no configuration selected")
    assert not await sync_to_async(RunMetadata.objects.exists)()


def engine_process(settings) -> subprocess.Popen:
    """``attpcdaq engine`` on the test database, in a process of its own."""
    database = settings.DATABASES["default"]
    url = (f"sqlite:///{database['NAME']}" if database["ENGINE"].endswith("sqlite3") else
           f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
           f"{database['NAME']}")
    return subprocess.Popen([sys.executable, "-m", "attpcdaq", "engine"],
                            env={**os.environ, "ATTPCDAQ_DATABASE_URL": url,
                                 "ATTPCDAQ_POLL_INTERVAL": "0.2",
                                 "ATTPCDAQ_BACKUP_ROOT": str(settings.CONFIG_BACKUP_ROOT)},
                            start_new_session=True, stderr=subprocess.DEVNULL)


async def test_an_engine_killed_during_a_slow_start_is_adopted_on_restart(
        system, router, more_routers, settings):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    await engine.stop()
    for emulated in group.servers:
        emulated.ecc.durations[Operation.START] = 4.0
    process = engine_process(settings)
    try:
        from attpcdaq.daq import services

        await wait_for(lambda: EngineHeartbeat.objects.filter(pid=process.pid).exists(), 30,
                       "the engine process's first beat")
        await sync_to_async(services.request_transition)(None, "running")
        await wait_for(lambda: all(s.ecc.running is not None for s in group.servers) or None,
                       30, "the servers starting")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # mid-Start: the boards go on starting
        process.wait(10)
    assert await sync_to_async(lambda: run_row().status)() == "starting"
    restarted = Engine(fast_settings())
    await restarted.start()  # before the boards are done starting
    try:
        run = await wait_for(lambda: RunMetadata.objects.filter(status="running").first(),
                             20, "the run adopted")
        assert run.run_number == 0 and run.start_datetime is not None
        await wait_for(lambda: Event.objects.filter(
            run=run, message__contains="its boards finished starting").exists(), 10,
            "the adoption's event")
        await frames_arrive(router)
        assert (await run_command("ready")).status == "done"
        filed = await wait_for(lambda: RunMetadata.objects.filter(pk=run.pk, filed=True)
                               .first(), 30, "the run filed")
        assert filed.status == "stopped"
        for workdir in (router.workdir, more_routers(1)[0].workdir):
            assert list(workdir.glob("*.graw")) == []  # every file attributed
            assert list((workdir / EXPERIMENT / "run_0000").glob("*.graw"))
    finally:
        await restarted.stop()


async def test_stop_is_not_held_up_by_a_start_that_hangs_on_one_board(system):
    group, servers, engine = await system(3)
    assert (await run_command("ready")).status == "done"
    group.servers[1].ecc.hang_next(Operation.START)
    start = await sync_to_async(Command.objects.create)(kind="transition",
                                                        target=State.RUNNING)
    await wait_for(lambda: Command.objects.filter(pk=start.pk, status="running").exists(),
                   10, "the Start running")
    await until(lambda: group.servers[1].ecc.running is not None)
    stop = await sync_to_async(Command.objects.create)(kind="transition", target=State.READY,
                                                       label="Stop the run")
    stopped = await finished(stop)  # well before the 5 s transition timeout of the tests'
    assert (stopped.status, stopped.error) == ("done", "")
    start = await sync_to_async(Command.objects.get)(pk=start.pk)
    assert (start.status, start.error) == ("done", "")  # the others started, then stopped
    run = await sync_to_async(run_row)(start.run_id)
    assert run.status == "stopped"
    hung = await sync_to_async(ECCServer.objects.get)(pk=servers[1].pk)
    assert hung.excluded and hung.excluded_reason.startswith("Start hung: abandoned after")
    assert run.coverage["boards"]["CoBo[1]"]["excluded"][0]["reason"] == hung.excluded_reason
    states = await sync_to_async(lambda: dict(ECCServer.objects.values_list("name", "state")))()
    assert (states["CoBo[0]"], states["CoBo[2]"]) == (State.READY, State.READY)
    assert any("CoBo[1]: Start hung" in message
               for message in await sync_to_async(alarms)("CoBo[1]"))
    group.servers[1].ecc.clear_faults()


async def test_abort_abandons_one_boards_transition_and_the_others_go_on(system):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    group.servers[0].ecc.hang_next(Operation.START)
    start = await sync_to_async(Command.objects.create)(kind="transition",
                                                        target=State.RUNNING)
    await until(lambda: group.servers[0].ecc.running is not None)
    abort = await finished(await sync_to_async(Command.objects.create)(
        kind="abort", ecc_server=servers[0], reason="no answer for ages"))
    assert (abort.status, abort.error) == ("done", "")
    start = await finished(start)
    assert (start.status, start.error) == ("done", "")
    run = await sync_to_async(run_row)(start.run_id)
    assert run.status == "running"
    aborted = await sync_to_async(ECCServer.objects.get)(pk=servers[0].pk)
    assert aborted.excluded
    assert aborted.excluded_reason == "Start hung: abandoned by the engine (no answer for ages)"
    # Nothing runs on it for the engine any more: a second Abort is refused, saying so.
    again = await finished(await sync_to_async(Command.objects.create)(
        kind="abort", ecc_server=servers[0]))
    assert again.status == "failed" and "no transition of the engine runs on CoBo[0]" in \
        again.error
    assert (await run_command("ready")).status == "done"
    group.servers[0].ecc.clear_faults()


def unattributed() -> list[UnattributedData]:
    return list(UnattributedData.objects.order_by("found"))


@pytest.mark.parametrize("choice", ["aside", "run"])
async def test_data_written_while_no_run_is_open_waits_for_the_operators_choice(
        system, router, choice):
    group, servers, engine = await system(1)
    assert (await run_command("ready")).status == "done"
    started = await run_command("running")
    await frames_arrive(router)
    assert (await run_command("ready")).status == "done"
    await wait_for(lambda: run_row(started.run_id).filed, 30, "the run filed")
    # Boards that went on sending after the run closed (its server restarted, say).
    late = {"CoBo0_AsAd0_2026-12-01T21:04:10.000_0000.graw": b"\0" * 4096,
            "CoBo0_AsAd1_2026-12-01T21:04:10.001_0000.graw": b"\0" * 2048}
    for name, data in late.items():
        (router.workdir / name).write_bytes(data)
    (record,) = await wait_for(unattributed, 10, "the files noticed")
    assert sorted((f["name"], f["size"]) for f in record.files) == sorted(
        (name, len(data)) for name, data in late.items())
    assert await wait_for(lambda: alarms("router0"), 10, "the alarm") == [
        "2 file(s) on data router router0 were written while no run was open: choose on "
        "the status page where they go"]
    refused = await run_command("running")
    assert refused.status == "failed"
    assert "2 file(s) written on router0 while no run was open" in refused.error
    assert "choose on the status page" in refused.error
    run = await sync_to_async(run_row)(started.run_id)
    await sync_to_async(lambda: UnattributedData.objects.filter(pk=record.pk).update(
        decision=choice, run=run if choice == "run" else None, note="after a server restart",
        decided_at=timezone.now()))()
    settled = await wait_for(lambda: UnattributedData.objects.filter(
        pk=record.pk).exclude(settled_at=None).first(), 20, "the files moved")
    assert settled.error == "" and len(settled.files) == 2
    assert list(router.workdir.glob("*.graw")) == []
    if choice == "run":
        folder = router.workdir / EXPERIMENT / "run_0000"
        run = await sync_to_async(run_row)(started.run_id)
        assert run.problems == ["2 file(s) of router0 written while no run was open were "
                                "filed into this run by an operator: after a server restart"]
        assert {f["name"] for f in run.manifest["added_later"]} == set(late)
    else:
        (folder,) = (router.workdir / EXPERIMENT / "unattributed").iterdir()
    assert {p.name: p.stat().st_size for p in folder.iterdir() if p.name in late} == {
        name: len(data) for name, data in late.items()}
    # With the choice made, Start goes again.
    again = await run_command("running")
    assert (again.status, again.error) == ("done", "")
    assert (await run_command("ready")).status == "done"
