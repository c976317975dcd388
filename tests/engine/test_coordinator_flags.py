"""The coordinator's transition marks against real emulated ECC servers and a real database.

While the engine runs a transition the server is marked (``is_transitioning`` and
``transition_started``); however the transition ends (done, failed, timed out, server
gone, abandoned by an operator) the mark is cleared, so that a sick board never
holds the system controls. Completed transitions record their durations and clear
"Last error". These are the facts ``overview.read().any_transitioning`` and the
status page's "usually N s" read.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from attpcdaq.daq import overview
from attpcdaq.daq.models import ConfigId, ECCServer
from attpcdaq.daq.timing import transition_timing
from attpcdaq.engine.coordinator import TIMES_KEPT, Abandoned, EccCoordinator, PollSettings
from attpcdaq.engine.database import EngineDatabase, ServerInfo
from attpcdaq.get import (
    EccClient,
    EccError,
    EccTimeout,
    Operation,
    State,
    TransitionCode,
    step_for,
)

from .conftest import FAST, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

DESCRIBE = step_for(Operation.DESCRIBE, State.IDLE)


def row(pk: int) -> ECCServer:
    return ECCServer.objects.get(pk=pk)


@pytest.fixture
async def coordinated(emulators):
    """``start(**poll)``: one emulated server, its row, a running coordinator.

    Returns ``(emulated server, row, coordinator)``; everything is stopped after the test.
    """
    made: list[tuple[EccCoordinator, EngineDatabase]] = []

    async def start(seconds: float = 0.05, before=None, **poll):
        group = await emulators(1, seconds)
        emulated = group.servers[0]
        port = int(emulated.url.rsplit(":", 1)[1].strip("/"))

        def model():
            server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=port)
            server.selected_config = ConfigId.objects.create(
                ecc_server=server, describe="cobo0", prepare="experiment",
                configure="experiment")
            server.save()
            if before:
                before(server)
            return server

        server = await sync_to_async(model)()
        db = EngineDatabase()
        coord = EccCoordinator(ServerInfo(server.pk, server.name, server.url, True), db,
                               PollSettings(**{**FAST.__dict__, **poll}))
        coord.start()
        made.append((coord, db))
        await coord.wait_first_poll()
        await wait_for(lambda: row(server.pk).is_online, what="online")
        return emulated, server, coord

    yield start
    for coord, db in made:
        await coord.stop()
        await db.close()


def config(server: ECCServer):
    return server.selected_config.to_get()


async def marked(pk: int) -> ECCServer:
    """Wait until the engine's transition shows on the row."""
    return await wait_for(lambda: ECCServer.objects.filter(
        pk=pk, is_transitioning=True, transition_started__isnull=False).first(),
        what="the transition marked as the engine's")


async def busy() -> bool:
    return await sync_to_async(lambda: overview.read().any_transitioning)()


async def test_a_completed_transition_records_its_time_and_clears_last_error(coordinated):
    old = [1.5] * TIMES_KEPT

    def before(server):
        server.last_error, server.transition_times = "CoBo[0]: refused yesterday", {
            "Describe": old, "Configure": [7.0]}
        server.save()

    emulated, server, coord = await coordinated(seconds=0.3, before=before)
    await coord.transition(DESCRIBE, config(server), None)
    done = await sync_to_async(row)(server.pk)
    assert (done.state, done.is_transitioning, done.transition_started) == (
        ECCServer.DESCRIBED, False, None)
    assert (done.last_error, done.last_error_at) == ("", None)
    times = done.transition_times["Describe"]
    assert len(times) == TIMES_KEPT and times[:-1] == old[1:]  # oldest dropped, newest last
    assert 0.3 <= times[-1] < 5
    assert done.transition_times["Configure"] == [7.0]  # other operations kept
    timing = transition_timing(done)
    assert timing.elapsed is None and not timing.slow


async def test_the_mark_shows_while_it_runs_and_clears_when_it_fails(coordinated):
    emulated, server, coord = await coordinated()
    emulated.ecc.hang_next(Operation.DESCRIBE)
    task = asyncio.create_task(coord.transition(DESCRIBE, config(server), None))
    during = await marked(server.pk)
    assert during.transition == TransitionCode.DESCRIBING
    assert await busy()
    timing = transition_timing(during)
    assert (timing.operation, timing.usual, timing.slow) == ("Describe", None, False)
    emulated.ecc.clear_faults()  # releases the hung Describe, which then fails
    with pytest.raises(EccError, match="released by the emulator"):
        await task
    after = await sync_to_async(row)(server.pk)
    assert (after.is_transitioning, after.transition_started, after.state) == (
        False, None, ECCServer.IDLE)
    assert "released by the emulator" in after.last_error
    assert after.transition_times == {}  # only completed transitions count
    assert not await busy()


async def test_a_timed_out_transition_is_no_longer_the_engines(coordinated):
    emulated, server, coord = await coordinated(transition_timeout=1.0)
    emulated.ecc.hang_next(Operation.DESCRIBE)
    with pytest.raises(EccTimeout):
        await coord.transition(DESCRIBE, config(server), None)
    # The server never gives up: polling shows its own transition, which blocks nothing.
    polled = await wait_for(lambda: ECCServer.objects.filter(
        pk=server.pk, is_transitioning=True, transition=TransitionCode.DESCRIBING).first(),
        what="the server's own transition, polled")
    assert polled.transition_started is None
    assert polled.last_error
    assert not await busy()
    emulated.ecc.clear_faults()
    await wait_for(lambda: not row(server.pk).is_transitioning, what="the hung Describe over")


async def test_a_server_that_crashes_mid_transition_is_not_left_transitioning(coordinated):
    emulated, server, coord = await coordinated()
    emulated.ecc.hang_next(Operation.DESCRIBE)
    task = asyncio.create_task(coord.transition(DESCRIBE, config(server), None))
    await marked(server.pk)
    await emulated.crash()
    with pytest.raises(EccError):
        await task
    gone = await wait_for(lambda: ECCServer.objects.filter(pk=server.pk, is_online=False)
                          .first(), what="offline")
    assert (gone.is_transitioning, gone.transition_started) == (False, None)
    assert not await busy()


async def test_going_offline_clears_a_polled_transition(coordinated):
    emulated, server, coord = await coordinated()
    emulated.ecc.hang_next(Operation.DESCRIBE)
    outsider = EccClient(emulated.url)  # someone else's transition: polled, not run by us
    hung = asyncio.create_task(outsider.transition(Operation.DESCRIBE, config(server), None))
    try:
        polled = await wait_for(lambda: ECCServer.objects.filter(
            pk=server.pk, is_transitioning=True).first(), what="transition polled")
        assert polled.transition_started is None and not await busy()
        await emulated.crash()
        gone = await wait_for(lambda: ECCServer.objects.filter(pk=server.pk, is_online=False)
                              .first(), what="offline")
        assert gone.is_transitioning is False and gone.transition == 0
    finally:
        hung.cancel()
        await asyncio.gather(hung, return_exceptions=True)
        await outsider.aclose()


async def test_a_mark_left_by_a_dead_engine_is_cleared_by_the_first_poll(coordinated):
    def before(server):
        from django.utils import timezone

        server.is_transitioning, server.transition = True, TransitionCode.STARTING
        server.transition_started = timezone.now()
        server.save()

    emulated, server, coord = await coordinated(before=before)
    fresh = await wait_for(lambda: ECCServer.objects.filter(
        pk=server.pk, transition_started__isnull=True, is_transitioning=False).first(),
        what="the stale mark cleared")
    assert fresh.state == ECCServer.IDLE


async def test_abandon_stops_waiting_and_the_server_goes_on(coordinated):
    emulated, server, coord = await coordinated()
    assert await coord.abandon("nothing to abandon") is False
    emulated.ecc.hang_next(Operation.DESCRIBE)
    task = asyncio.create_task(coord.transition(DESCRIBE, config(server), None))
    await marked(server.pk)
    reason = "Describe hung: abandoned by alice «ﾃｽﾄ»"
    assert await coord.abandon(reason) is True
    with pytest.raises(Abandoned) as raised:
        await asyncio.wait_for(task, 5)  # at once, not after the transition timeout
    assert raised.value.reason == reason and str(raised.value) == reason
    after = await sync_to_async(row)(server.pk)
    assert after.transition_started is None
    assert after.last_error == f"Describe abandoned: {reason}"
    assert not await busy()
    # The emulated server still runs the Describe, and the coordinator polls it as usual.
    assert emulated.ecc.running is not None
    assert coord.busy is None
    await wait_for(lambda: ECCServer.objects.filter(
        pk=server.pk, is_transitioning=True, transition=TransitionCode.DESCRIBING,
        transition_started=None).exists(), what="the abandoned Describe, polled")
    assert not await busy()
    assert await coord.abandon("again") is False  # nothing of ours runs any more
    emulated.ecc.clear_faults()
    await wait_for(lambda: not row(server.pk).is_transitioning, what="the Describe over")
    # The coordinator still runs transitions afterwards.
    await coord.transition(DESCRIBE, config(server), None)
    assert (await sync_to_async(row)(server.pk)).state == ECCServer.DESCRIBED


async def test_cancelling_a_transition_is_not_abandoning_it(coordinated):
    emulated, server, coord = await coordinated()
    emulated.ecc.hang_next(Operation.DESCRIBE)
    task = asyncio.create_task(coord.transition(DESCRIBE, config(server), None))
    await marked(server.pk)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert coord.busy is None
    emulated.ecc.clear_faults()
