"""Fixtures of the engine tests: emulated ECC servers, a data model pointing at them, an engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async

from attpcdaq.daq.models import ConfigId, DataRouter, DataSource, ECCServer, Experiment
from attpcdaq.emulator.server import EccEmulatorGroup
from attpcdaq.engine.coordinator import PollSettings
from attpcdaq.engine.supervisor import Engine, EngineSettings

FAST = PollSettings(interval=0.2, fast_interval=0.05, offline_after=2, backoff_cap=1.0,
                    state_timeout=1.0, transition_timeout=5.0)


def fast_settings(**poll) -> EngineSettings:
    """Engine settings for tests: quick polls, short timeouts."""
    values = {**FAST.__dict__, **poll}
    return EngineSettings(poll=PollSettings(**values), command_interval=0.02,
                          reload_interval=0.5, heartbeat_interval=0.5)


def make_model(urls: list[str]) -> list[ECCServer]:
    """An active experiment and one CoBo per URL, with a configuration selected."""
    Experiment.objects.create(name="e20009 test", is_active=True)
    router = DataRouter.objects.create(name="router0", ip_address="127.0.0.1", port=46005)
    servers = []
    for number, url in enumerate(urls):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        server = ECCServer.objects.create(name=f"CoBo[{number}]", ip_address="127.0.0.1",
                                          port=port)
        DataSource.objects.create(name=f"CoBo[{number}]", ecc_server=server, data_router=router)
        server.selected_config = ConfigId.objects.create(
            ecc_server=server, describe=f"cobo{number % 4}", prepare="experiment",
            configure="experiment")
        server.save()
        servers.append(server)
    return servers


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = ""):
    """Poll a database predicate (run in a thread) until true; fail after ``timeout``."""
    check = sync_to_async(predicate, thread_sensitive=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")


@pytest.fixture
async def emulators():
    """Start N emulated ECC servers with the given transition time."""
    groups = []

    async def start(count: int = 3, seconds: float = 0.05) -> EccEmulatorGroup:
        group = EccEmulatorGroup(count=count, host="127.0.0.1", port=0, transition_seconds=seconds)
        await group.__aenter__()
        groups.append(group)
        return group

    yield start
    for group in groups:
        await group.__aexit__(None, None, None)


@pytest.fixture
async def system(emulators, transactional_db):
    """Emulators, a data model for them, and a running engine: ``(group, servers, engine)``."""
    engines = []

    async def start(count: int = 3, seconds: float = 0.05, **poll):
        group = await emulators(count, seconds)
        servers = await sync_to_async(make_model)([s.url for s in group.servers])
        engine = Engine(fast_settings(**poll))
        await engine.start()
        engines.append(engine)
        return group, servers, engine

    yield start
    for engine in engines:
        await engine.stop()
