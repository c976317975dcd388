"""The engine against servers that behave as the real getEccSoapServer does.

Both gSOAP generations; transitions ignored by a board that is not where the engine
thought; Breakup from Running; a failed Breakup (the board is left Off); the
MuTAnT's own server moving in its order.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from attpcdaq.daq.models import ConfigId, DataRouter, DataSource, ECCServer, RunMetadata
from attpcdaq.get import EccClient, Operation, State

from .conftest import wait_for
from .test_engine import run_command

pytestmark = pytest.mark.django_db(transaction=True)


def states() -> dict[str, int]:
    return dict(ECCServer.objects.values_list("name", "state"))


@pytest.mark.parametrize("gsoap", ["2.7", "2.8"])
async def test_a_whole_cycle_with_either_generation_of_server(system, gsoap):
    group, servers, engine = await system(2)
    assert group.servers[0].generation == gsoap
    for target, state in [("ready", State.READY), ("running", State.RUNNING),
                          ("paused", State.PAUSED), ("running", State.RUNNING),
                          ("ready", State.READY), ("idle", State.IDLE)]:
        command = await run_command(target)
        assert (command.status, command.error) == ("done", ""), target
        assert set((await sync_to_async(states)()).values()) == {state}
    run = await wait_for(lambda: RunMetadata.objects.filter(filed=True).first(), 20, "filed")
    assert run.status == RunMetadata.Status.STOPPED


@pytest.mark.parametrize("gsoap", ["2.7", "2.8"])
async def test_a_board_that_ignores_a_step_fails_the_walk_naming_its_state(system, gsoap):
    group, servers, engine = await system(2)
    # The engine believes CoBo[1] Idle; meanwhile someone else prepares it.
    poll = engine.settings.poll
    polled = {c.name: c.last_success_at for c in engine.coordinators.values()}
    poll.interval = poll.fast_interval = 60.0
    for coord in engine.coordinators.values():  # one last poll, then none for a minute
        await wait_for(lambda c=coord: c.last_success_at != polled[c.name], what="a poll")
    async with EccClient(group.servers[1].url) as outsider:
        for op in (Operation.DESCRIBE, Operation.PREPARE):
            await outsider.transition(op, servers[1].selected_config.to_get(), None)
    command = await run_command("described")
    assert command.status == "failed"
    assert command.error == "Describe failed on CoBo[1] ignored Describe: it is Prepared"
    now = await sync_to_async(states)()
    assert now == {"CoBo[0]": State.DESCRIBED, "CoBo[1]": State.PREPARED}


@pytest.mark.parametrize("gsoap", ["2.7", "2.8"])
async def test_breakup_from_running_ends_the_run(system, gsoap):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    started = await run_command("running")
    assert started.status == "done"
    command = await run_command("prepared")  # one Breakup from Running, which stops first
    assert (command.status, command.error) == ("done", "")
    assert [p.operation for p in group.servers[0].ecc.history][-1:] == [Operation.BREAKUP]
    assert set((await sync_to_async(states)()).values()) == {State.PREPARED}
    run = await wait_for(lambda: RunMetadata.objects.filter(pk=started.run_id, filed=True)
                         .first(), 20, "the run filed")
    assert run.status == RunMetadata.Status.STOPPED


@pytest.mark.parametrize("gsoap", ["2.7", "2.8"])
async def test_a_failed_breakup_leaves_the_board_off_and_a_walk_gets_it_out(system, gsoap):
    group, servers, engine = await system(2)
    assert (await run_command("ready")).status == "done"
    group.servers[1].ecc.fail_next(Operation.BREAKUP, "CoBo 1 lost its clock")
    command = await run_command("prepared")
    assert command.status == "failed"
    assert command.error == "Breakup failed on CoBo[1]: Breakup refused (ErrorCode 8): CoBo 1 " \
                            "lost its clock"
    await wait_for(lambda: ECCServer.objects.get(name="CoBo[1]").state == State.OFF, what="Off")
    command = await run_command("idle")  # Breakup from Off first, then Undo, Undo for all
    assert (command.status, command.error) == ("done", "")
    assert set((await sync_to_async(states)()).values()) == {State.IDLE}
    assert [p.operation for p in group.servers[1].ecc.history][-3:] == [
        Operation.BREAKUP, Operation.UNDO, Operation.UNDO]


def add_mutant_server(url: str) -> ECCServer:
    """An ECC server of its own for the MuTAnT (sending to router0, as the CoBo[0])."""
    port = int(url.rsplit(":", 1)[1].strip("/"))
    server = ECCServer.objects.create(name="MuTAnT", ip_address="127.0.0.1", port=port)
    DataSource.objects.create(name="Mutant[master]", ecc_server=server,
                              data_router=DataRouter.objects.get(name="router0"))
    server.selected_config = ConfigId.objects.create(
        ecc_server=server, describe="mutant", prepare="experiment", configure="experiment")
    server.save()
    return server


async def test_a_separate_mutant_server_moves_in_its_order(system, emulators):
    group, servers, engine = await system(2, seconds=0.1)
    trigger = (await emulators(1, seconds=0.1)).servers[0]
    await sync_to_async(add_mutant_server)(trigger.url)
    await engine.reload_servers()
    await wait_for(lambda: ECCServer.objects.filter(is_online=True).count() == 3, what="online")
    for target in ("ready", "running", "paused", "running", "ready"):
        command = await run_command(target)
        assert (command.status, command.error) == ("done", ""), target
    boards = [server.ecc for server in group.servers]

    def performed(ecc, operation):
        return [p for p in ecc.history if p.operation == operation]

    # Prepare: the MuTAnT first. Configure, Start, Resume: the CoBos first.
    # Pause and Stop: the trigger first (our choice: GET settles nothing).
    for operation, trigger_first in [(Operation.PREPARE, True), (Operation.CONFIGURE, False),
                                     (Operation.START, False), (Operation.PAUSE, True),
                                     (Operation.RESUME, False), (Operation.STOP, True)]:
        mutant = performed(trigger.ecc, operation)
        cobos = [p for ecc in boards for p in performed(ecc, operation)]
        assert len(mutant) == 1 and len(cobos) == 2, operation
        if trigger_first:
            assert mutant[0].ended <= min(p.began for p in cobos), operation
        else:
            assert max(p.ended for p in cobos) <= mutant[0].began, operation
    # Within a group the servers move together: the CoBos' Configures overlap.
    first, second = (performed(ecc, Operation.CONFIGURE)[0] for ecc in boards)
    assert first.began < second.ended and second.began < first.ended
