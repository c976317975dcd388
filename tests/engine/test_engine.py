"""The engine against real emulated ECC servers over loopback, with a real database."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection

from attpcdaq.daq import services
from attpcdaq.daq.models import Command, ECCServer, Event, Experiment, RunMetadata
from attpcdaq.engine.supervisor import Engine
from attpcdaq.get import EccClient, Operation, State

from .conftest import fast_settings, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

READY, RUNNING, IDLE = ECCServer.READY, ECCServer.RUNNING, ECCServer.IDLE


def states():
    return sorted(ECCServer.objects.values_list("state", flat=True))


def queue(target, server=None):
    return services.request_transition(None, target, server)


async def run_command(target, server=None, timeout=20.0) -> Command:
    """Queue a command, wait until the engine finished it, return it."""
    command = await sync_to_async(queue)(target, server)
    return await wait_for(lambda: Command.objects.filter(
        pk=command.pk, status__in=["done", "failed"]).first(), timeout, f"command {target}")


async def test_polling_marks_servers_online_with_their_state(system):
    group, servers, engine = await system(3)
    await wait_for(lambda: ECCServer.objects.filter(is_online=True).count() == 3, what="online")
    assert await sync_to_async(states)() == [IDLE] * 3
    # A change made behind the engine's back shows up by polling.
    async with EccClient(group.servers[1].url) as ecc:
        await ecc.transition(Operation.DESCRIBE, servers[1].selected_config.to_get(), None)
    await wait_for(lambda: ECCServer.objects.get(pk=servers[1].pk).state == ECCServer.DESCRIBED,
                   what="Described")


async def test_offline_detection_and_recovery(system):
    group, servers, engine = await system(2)
    await wait_for(lambda: ECCServer.objects.filter(is_online=True).count() == 2)
    victim = group.servers[0]
    await victim.crash()
    server = await wait_for(lambda: ECCServer.objects.filter(pk=servers[0].pk, is_online=False)
                            .first(), what="offline")
    assert servers[0].url in server.last_error
    assert await sync_to_async(lambda: ECCServer.objects.get(pk=servers[1].pk).is_online)()
    await victim.restart()
    await wait_for(lambda: ECCServer.objects.get(pk=servers[0].pk).is_online, 10, "back online")


async def test_go_to_ready_walks_every_server_in_lockstep(system):
    group, servers, engine = await system(3, seconds=0.1)
    command = await run_command("ready")
    assert (command.status, command.error) == ("done", "")
    assert await sync_to_async(states)() == [READY] * 3
    assert all(s.ecc.state == State.READY for s in group.servers)
    assert not await sync_to_async(ECCServer.objects.filter(is_transitioning=True).exists)()


async def test_a_failing_server_stops_the_walk_and_is_named(system):
    group, servers, engine = await system(3)
    group.servers[2].ecc.fail_next(Operation.PREPARE, "AsAd 2 power supply tripped")
    command = await run_command("ready")
    assert command.status == "failed"
    assert "Prepare failed on CoBo[2]" in command.error
    assert "AsAd 2 power supply tripped" in command.error
    # The others prepared, the failing one stayed Described, and nobody configured.
    assert await sync_to_async(states)() == [ECCServer.DESCRIBED, ECCServer.PREPARED,
                                             ECCServer.PREPARED]
    failing = await sync_to_async(ECCServer.objects.get)(pk=servers[2].pk)
    assert "AsAd 2 power supply tripped" in failing.last_error


async def test_a_server_busy_with_another_transition_is_refused_and_named(system):
    group, servers, engine = await system(2, seconds=0.05)
    group.servers[0].ecc.hang_next(Operation.DESCRIBE)
    outsider = EccClient(group.servers[0].url)
    hung = asyncio.create_task(outsider.transition(
        Operation.DESCRIBE, servers[0].selected_config.to_get(), None))
    await wait_for(lambda: ECCServer.objects.get(pk=servers[0].pk).is_transitioning,
                   what="transitioning")
    command = await run_command("described")
    assert command.status == "failed"
    assert "CoBo[0]" in command.error and "transition is already running" in command.error
    group.servers[0].ecc.clear_faults()
    hung.cancel()
    await asyncio.gather(hung, return_exceptions=True)
    await outsider.aclose()


async def test_twenty_concurrent_starts_give_one_run(system):
    group, servers, engine = await system(3)
    assert (await run_command("ready")).status == "done"
    user = await sync_to_async(User.objects.create_user)("op", password="x")

    def start(_):
        try:
            return services.request_transition(user, "running").pk
        except services.Conflict:
            return None
        finally:
            connection.close()  # each request thread has its own

    with ThreadPoolExecutor(20) as pool:
        accepted = [pk for pk in await asyncio.gather(*(
            asyncio.get_running_loop().run_in_executor(pool, start, n) for n in range(20)))
            if pk is not None]
    assert len(accepted) == 1
    await wait_for(lambda: Command.objects.filter(pk=accepted[0], status="done").exists())
    runs = await sync_to_async(lambda: list(RunMetadata.objects.all()))()
    assert [(r.run_number, r.status) for r in runs] == [(0, "running")]
    assert runs[0].start_datetime is not None
    assert runs[0].configs == {f"CoBo[{n}]": f"cobo{n}/experiment/experiment" for n in range(3)}


async def test_start_refuses_unless_every_server_is_ready(system):
    group, servers, engine = await system(2)
    command = await run_command("running")
    assert command.status == "failed"
    assert "not Ready: CoBo[0] (Idle), CoBo[1] (Idle)" in command.error
    assert not await sync_to_async(RunMetadata.objects.exists)()


async def test_a_refused_start_aborts_the_run_and_never_reuses_its_number(system):
    group, servers, engine = await system(3)
    assert (await run_command("ready")).status == "done"
    group.servers[1].ecc.fail_next(Operation.START, "CoBo 1 clock not locked")
    command = await run_command("running")
    assert command.status == "failed" and "CoBo[1]" in command.error
    run = await sync_to_async(RunMetadata.objects.get)()
    assert (run.run_number, run.status) == (0, "aborted")
    assert "clock not locked" in run.reason
    assert await sync_to_async(states)() == [READY] * 3
    assert not await sync_to_async(Event.objects.filter(level="alarm").exists)()
    # What the two servers that did start sent is filed under the aborted run's number.
    await wait_for(lambda: RunMetadata.objects.filter(run_number=0, filed=True).exists(),
                   what="run 0 filed")
    command = await run_command("running")
    assert (command.status, command.error) == ("done", "")
    numbers = await sync_to_async(lambda: sorted(
        RunMetadata.objects.values_list("run_number", "status")))()
    assert numbers == [(0, "aborted"), (1, "running")]


async def test_stop_completes_when_a_server_hangs_and_names_it(system):
    group, servers, engine = await system(3, transition_timeout=1.0)
    assert (await run_command("ready")).status == "done"
    assert (await run_command("running")).status == "done"
    group.servers[0].ecc.hang_next(Operation.STOP)
    command = await run_command("ready")
    assert command.status == "failed"
    assert "Stop failed on CoBo[0]" in command.error and "no answer within" in command.error
    run = await sync_to_async(RunMetadata.objects.get)()
    assert run.status == "stopped" and run.stop_datetime is not None
    assert "CoBo[0]" in run.reason
    assert await sync_to_async(lambda: sorted(
        ECCServer.objects.exclude(pk=servers[0].pk).values_list("state", flat=True)))() == [
        READY, READY]
    messages = await sync_to_async(lambda: list(Event.objects.filter(
        level="alarm", source="CoBo[0]").values_list("message", flat=True)))()
    assert any(m.startswith("CoBo[0]: Stop hung: Stop: no answer within") for m in messages)
    assert any(m.startswith("CoBo[0] did not stop") for m in messages)
    group.servers[0].ecc.clear_faults()


async def test_pause_resume_and_stop(system):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    assert (await run_command("running")).status == "done"
    assert (await run_command("paused")).status == "done"
    assert await sync_to_async(lambda: RunMetadata.objects.get().status)() == "paused"
    assert await sync_to_async(states)() == [ECCServer.PAUSED] * 2
    assert (await run_command("running")).status == "done"
    assert await sync_to_async(lambda: RunMetadata.objects.get().status)() == "running"
    assert (await run_command("ready")).status == "done"
    run = await sync_to_async(RunMetadata.objects.get)()
    assert (run.status, run.reason) == ("stopped", "")


async def test_reset_steps_one_state_back(system):
    group, servers, engine = await system(2)
    assert (await run_command("prepared")).status == "done"
    assert (await run_command("reset")).status == "done"
    assert await sync_to_async(states)() == [ECCServer.DESCRIBED] * 2
    assert (await run_command("reset", servers[0])).status == "done"
    assert await sync_to_async(states)() == [IDLE, ECCServer.DESCRIBED]


async def test_alarm_when_a_server_falls_out_of_running(system):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    assert (await run_command("running")).status == "done"
    async with EccClient(group.servers[1].url) as ecc:
        await ecc.transition(Operation.STOP, None, None)
    event = await wait_for(lambda: Event.objects.filter(level="alarm").first(), what="alarm")
    assert event.source == "CoBo[1]" and "fell out of Running" in event.message
    run = await sync_to_async(RunMetadata.objects.get)()
    assert event.run_id == run.pk


async def test_engine_restart_mid_run_resumes_the_run(system):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    assert (await run_command("running")).status == "done"
    await engine.stop()
    second = Engine(fast_settings())
    await second.start()
    try:
        assert second.keeper.open_run_id is not None
        run = await sync_to_async(RunMetadata.objects.get)()
        assert (run.run_number, run.status) == (0, "running")
        assert await sync_to_async(states)() == [RUNNING] * 2
        assert (await run_command("ready")).status == "done"
        run = await sync_to_async(RunMetadata.objects.get)()
        assert run.status == "stopped"
        assert not await sync_to_async(Event.objects.filter(level="alarm").exists)()
    finally:
        await second.stop()


async def test_engine_restart_during_start_recovers_the_run(system):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    await engine.stop()
    # The engine died after reserving the run and starting the servers, before it
    # could mark the run started: the servers are Running, the run is "starting".
    for emulated in group.servers:
        async with EccClient(emulated.url) as ecc:
            await ecc.transition(Operation.START, None, None)
    await sync_to_async(lambda: RunMetadata.objects.create(
        experiment=Experiment.active(), run_number=0, status="starting"))()
    second = Engine(fast_settings())
    await second.start()
    try:
        run = await sync_to_async(RunMetadata.objects.get)()
        assert run.status == "running" and run.start_datetime is not None
    finally:
        await second.stop()


async def test_an_unexpected_failure_in_a_loop_is_shown_once(system):
    group, servers, engine = await system(1)
    calls = []

    async def broken() -> None:  # stands for a bug in one step of the router loop
        calls.append(1)
        raise RuntimeError("boom ☢")

    engine.keeper.settle_unattributed = broken
    await wait_for(lambda: len(calls) >= 4 or None, 10, "several router checks")
    messages = await sync_to_async(lambda: list(Event.objects.filter(
        source="engine", level="error").values_list("message", flat=True)))()
    assert messages == ["checking the data routers and filing failed unexpectedly: "
                        "RuntimeError: boom ☢"]


@pytest.mark.parametrize("broken_read", ["pending_kinds", "claim_command"])
async def test_commands_that_cannot_be_read_are_shown_once_and_then_run(system, broken_read):
    # pending_kinds: the question asked 100 times a second, whether commands wait;
    # claim_command: taking the one that waits.
    group, servers, engine = await system(1)
    read, calls = getattr(engine.db, broken_read), []

    async def broken(**_):  # stands for the database refusing the query
        calls.append(1)
        raise RuntimeError("no such table: daq_command")

    setattr(engine.db, broken_read, broken)
    command = await sync_to_async(queue)("described")  # for claim_command to be asked
    await wait_for(lambda: len(calls) >= 10 or None, 10, "several reads")
    setattr(engine.db, broken_read, read)
    done = await wait_for(lambda: Command.objects.filter(
        pk=command.pk, status__in=["done", "failed"]).first(), what="the command, run")
    assert done.status == "done", done.error
    messages = await sync_to_async(lambda: list(Event.objects.filter(
        source="engine", level="error").values_list("message", flat=True)))()
    assert messages == ["reading the commands failed unexpectedly: "
                        "RuntimeError: no such table: daq_command"]


async def test_a_poll_that_fails_unexpectedly_is_the_servers_last_error(system, caplog):
    group, servers, engine = await system(1)
    coord, calls = engine.coordinators[servers[0].pk], []

    async def broken():  # stands for a bug in one poll
        calls.append(1)
        raise RuntimeError("boom")

    coord.refresh = broken
    coord.settings.interval = 0.05
    await wait_for(lambda: len(calls) >= 5 or None, 10, "several polls")
    row = await wait_for(lambda: ECCServer.objects.filter(
        pk=servers[0].pk, last_error="polling failed unexpectedly: RuntimeError: boom").first(),
        what="the failure shown on the server")
    assert row.last_error_at is not None
    logged = [r for r in caplog.records if "polling" in r.getMessage() and r.exc_info]
    assert len(logged) == 1  # the traceback once, not once a poll


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="a connection cut by the server: PostgreSQL (make test runs it)")
async def test_the_engine_reconnects_when_the_database_cuts_its_connection(system):
    group, servers, engine = await system(1)

    def backend_pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    before = await engine.db.run(backend_pid)

    def cut() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [before])

    await sync_to_async(cut)()
    assert (await run_command("described")).status == "done"
    assert await engine.db.run(backend_pid) != before  # a new connection, one for the engine


async def test_a_command_asked_in_the_engines_process_is_claimed_without_waiting_for_a_look(
        system):
    # `attpcdaq serve` runs the web and the engine in one process: a command committed
    # there wakes the engine at once. This engine looks for commands once an hour.
    group, servers, engine = await system(1)
    await engine.stop()
    patient = Engine(replace(fast_settings(), command_interval=3600))
    await patient.start()
    try:
        # The first, maybe found by the engine's first look at start; the others only
        # by the wake-up, the next look being an hour away.
        for target in ("described", "idle", "described"):
            assert (await run_command(target, timeout=10)).status == "done"
        server = await sync_to_async(ECCServer.objects.get)()
        refresh = await sync_to_async(services.request_config_refresh)(None, server)
        assert (await wait_for(lambda: Command.objects.filter(
            pk=refresh.pk, status__in=["done", "failed"]).first(), 10, "the refresh")
                ).status == "done"
    finally:
        await patient.stop()
