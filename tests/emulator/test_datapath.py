"""Emulated boards send data while Running, to real emulated data routers."""

from __future__ import annotations

import asyncio
import socket

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def walk(ecc: EccClient, links: DataLinkSet, *operations: Operation) -> None:
    for operation in operations:
        await ecc.transition(operation, CONFIG, links)


async def test_running_boards_fill_the_router_and_stop_closes_the_files(tmp_path):
    async with DataRouterEmulator("127.0.0.1", 0, tmp_path) as router, \
            EccEmulatorGroup(1, transition_seconds=0.02,
                             data=DataSettings(rate_hz=50, hits_per_asad=5)) as group:
        links = DataLinkSet((DataLink("CoBo[1]", "router1", "127.0.0.1", router.port),))
        async with EccClient(group.servers[0].url) as ecc:
            await walk(ecc, links, Operation.DESCRIBE, Operation.PREPARE, Operation.CONFIGURE,
                       Operation.START)
            await asyncio.sleep(0.3)
            await walk(ecc, links, Operation.STOP)
            assert (await ecc.get_state()).state == State.READY
        await router.wait_idle()
    files = sorted(tmp_path.glob("*.graw"))
    assert [f.name.split("_")[1] for f in files] == ["AsAd0", "AsAd1", "AsAd2", "AsAd3"]
    for path in files:
        frames = list(iter_frames(path))
        assert len(frames) >= 3
        assert {frame.cobo_idx for frame in frames} == {1}
        assert [frame.event_idx for frame in frames] == list(range(len(frames)))


async def test_configure_fails_when_a_router_cannot_be_reached():
    links = DataLinkSet((DataLink("CoBo[1]", "router9", "127.0.0.1", free_port()),))
    async with EccEmulatorGroup(1, transition_seconds=0.01, data=DataSettings()) as group, \
            EccClient(group.servers[0].url) as ecc:
        await walk(ecc, links, Operation.DESCRIBE, Operation.PREPARE)
        with pytest.raises(EccRefused, match="router9") as info:
            await ecc.transition(Operation.CONFIGURE, CONFIG, links)
        assert info.value.code == 3
        assert (await ecc.get_state()).state == State.PREPARED
