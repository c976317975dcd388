"""Emulated boards and their data routers, as the hardware does it.

Boards link to their router at Configure, send while Running, keep the link
through Pause and Stop, and close it at Breakup; they are hardware, so they go on
acquiring when their ECC server crashes or restarts.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from attpcdaq.emulator.datapath import DataSettings
from attpcdaq.emulator.router import DataRouterEmulator
from attpcdaq.emulator.server import EccEmulatorGroup
from attpcdaq.get import (
    ConfigId,
    DataLink,
    DataLinkSet,
    EccClient,
    EccRefused,
    Operation,
    State,
    iter_frames,
)

CONFIG = ConfigId("cobo1", "experiment", "experiment")
Op = Operation


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"still not true after {timeout} s"
        await asyncio.sleep(0.01)


async def walk(ecc: EccClient, links: DataLinkSet, *operations: Operation) -> None:
    for operation in operations:
        await ecc.transition(operation, CONFIG, links)


def event_numbers(directory) -> list[int]:
    """Event numbers of AsAd 0's frames in ``directory``, in file then frame order."""
    return [frame.event_idx for path in sorted(directory.glob("*AsAd0_*.graw"))
            for frame in iter_frames(path)]


@pytest.fixture
async def rig(tmp_path, request):
    """A router in tmp_path/data and one emulated server whose CoBo[1] sends to it."""
    counter = getattr(request, "param", "restart")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = DataSettings(rate_hz=50, hits_per_asad=5, restart_counter=counter == "restart")
    async with DataRouterEmulator("127.0.0.1", 0, data_dir) as router, \
            EccEmulatorGroup(1, transition_seconds=0.02, data=settings) as group:
        links = DataLinkSet((DataLink("CoBo[1]", "router1", "127.0.0.1", router.port),))
        async with EccClient(group.servers[0].url) as ecc:
            yield router, group.servers[0], ecc, links, data_dir


async def test_boards_link_at_configure_send_while_running_and_unlink_at_breakup(rig):
    router, server, ecc, links, data_dir = rig
    await walk(ecc, links, Op.DESCRIBE, Op.PREPARE)
    assert router.active_connections == 0
    await walk(ecc, links, Op.CONFIGURE)
    await until(lambda: router.active_connections == 1)
    assert router.stats.frames == 0  # linked, not sending
    await walk(ecc, links, Op.START)
    await until(lambda: router.stats.frames >= 12)
    await walk(ecc, links, Op.STOP)
    assert (await ecc.get_state()).state == State.READY
    assert not server.boards.streamer.running
    frames = router.stats.frames
    await walk(ecc, links, Op.START, Op.PAUSE)
    assert router.active_connections == 1  # the link outlives Stop and Pause
    assert router.stats.frames > frames
    await walk(ecc, links, Op.RESUME, Op.BREAKUP)
    assert (await ecc.get_state()).state == State.PREPARED
    await router.wait_idle()  # Breakup hung up
    for path in data_dir.glob("*.graw"):
        assert {frame.cobo_idx for frame in iter_frames(path)} == {1}


@pytest.mark.parametrize("rig", ["restart", "continue"], indirect=True)
async def test_the_event_counter_restarts_or_counts_on_at_each_start(rig, request, tmp_path):
    router, server, ecc, links, data_dir = rig
    await walk(ecc, links, Op.DESCRIBE, Op.PREPARE, Op.CONFIGURE, Op.START)
    await until(lambda: router.stats.frames >= 12)
    await walk(ecc, links, Op.PAUSE, Op.RESUME)  # Resume never restarts the count
    await until(lambda: router.stats.frames >= 24)
    await walk(ecc, links, Op.STOP)
    first = event_numbers(data_dir)
    assert first == list(range(len(first)))
    # File the first run away, as the run control does, then run again.
    run0 = tmp_path / "run_0000"
    run0.mkdir()
    for path in data_dir.glob("*.graw"):
        path.rename(run0 / path.name)
    frames = router.stats.frames
    await walk(ecc, links, Op.START)
    await until(lambda: router.stats.frames >= frames + 12)
    await walk(ecc, links, Op.STOP)
    second = event_numbers(data_dir)
    begin = 0 if request.node.callspec.params["rig"] == "restart" else first[-1] + 1
    assert second == list(range(begin, begin + len(second)))


async def test_boards_go_on_acquiring_when_their_server_crashes_and_restarts(rig):
    router, server, ecc, links, data_dir = rig
    await walk(ecc, links, Op.DESCRIBE, Op.PREPARE, Op.CONFIGURE, Op.START)
    await until(lambda: router.stats.frames >= 4)
    await server.crash()
    frames = router.stats.frames
    await until(lambda: router.stats.frames >= frames + 8)
    await server.restart()
    assert (await ecc.get_state()).state == State.IDLE  # knows nothing of its boards
    frames = router.stats.frames
    await until(lambda: router.stats.frames >= frames + 8)
    # Configuring again takes the boards over: the old stream ends, a new link opens.
    await walk(ecc, links, Op.DESCRIBE, Op.PREPARE, Op.CONFIGURE)
    await until(lambda: router.active_connections == 1)
    frames = router.stats.frames
    await walk(ecc, links, Op.START, Op.STOP)
    assert router.stats.frames > frames


async def test_configure_fails_when_a_router_cannot_be_reached():
    links = DataLinkSet((DataLink("CoBo[1]", "router9", "127.0.0.1", free_port()),))
    async with EccEmulatorGroup(1, transition_seconds=0.01, data=DataSettings()) as group, \
            EccClient(group.servers[0].url) as ecc:
        await walk(ecc, links, Op.DESCRIBE, Op.PREPARE)
        with pytest.raises(EccRefused, match="router9") as info:
            await ecc.transition(Op.CONFIGURE, CONFIG, links)
        assert info.value.code == 3
        assert (await ecc.get_state()).state == State.PREPARED
