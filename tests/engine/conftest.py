"""Fixtures of the engine tests: emulated ECC servers, a data model pointing at them, an engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from attpcdaq.daq.models import ConfigId, DataRouter, DataSource, ECCServer, Experiment
from attpcdaq.emulator.datapath import DataSettings
from attpcdaq.emulator.process import EmulatorProcess
from attpcdaq.emulator.server import EXAMPLE_CONFIG_DIR, EccEmulatorGroup
from attpcdaq.engine.coordinator import PollSettings
from attpcdaq.engine.supervisor import Engine, EngineSettings

FAST = PollSettings(interval=0.2, fast_interval=0.05, offline_after=2, backoff_cap=1.0,
                    state_timeout=1.0, transition_timeout=5.0)


def fast_settings(**poll) -> EngineSettings:
    """Engine settings for tests: quick polls, short timeouts."""
    values = {**FAST.__dict__, **poll}
    return EngineSettings(poll=PollSettings(**values), command_interval=0.02,
                          reload_interval=0.5, heartbeat_interval=0.5, router_interval=0.3)


def make_model(urls: list[str], router_port: int, workdir: str) -> list[ECCServer]:
    """An active experiment, one data router, and one CoBo per URL, configured."""
    Experiment.objects.create(name="e20009 test", is_active=True)
    router = DataRouter.objects.create(name="router0", ip_address="127.0.0.1", port=router_port,
                                       working_dir=workdir)
    servers = []
    for number, url in enumerate(urls):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        server = ECCServer.objects.create(name=f"CoBo[{number}]", ip_address="127.0.0.1",
                                          port=port, config_dir=str(EXAMPLE_CONFIG_DIR))
        DataSource.objects.create(name=f"CoBo[{number}]", ecc_server=server, data_router=router)
        server.selected_config = ConfigId.objects.create(
            ecc_server=server, describe=f"cobo{number % 4}", prepare="experiment",
            configure="experiment")
        server.save()
        servers.append(server)
    return servers


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = ""):
    """Poll a database predicate (run in a thread) until true; fail after ``timeout``."""
    check = sync_to_async(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")


class RouterProcess(EmulatorProcess):
    """``attpcdaq emulate router`` in its own process (so its name is dataRouter)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(["router", "--data-dir", str(workdir)])
        self.workdir = workdir
        self.port = self.ports[0]


@pytest.fixture
def router(tmp_path):
    """A data router process writing into a temporary working directory."""
    workdir = tmp_path / "router0"
    workdir.mkdir()
    process = RouterProcess(workdir)
    yield process
    process.stop()


@pytest.fixture
async def emulators():
    """Start N emulated ECC servers whose boards stream to their routers."""
    groups = []

    async def start(count: int = 3, seconds: float = 0.05) -> EccEmulatorGroup:
        group = EccEmulatorGroup(count=count, host="127.0.0.1", port=0, transition_seconds=seconds,
                                 data=DataSettings(rate_hz=20, hits_per_asad=4))
        await group.__aenter__()
        groups.append(group)
        return group

    yield start
    for group in groups:
        await group.__aexit__(None, None, None)


@pytest.fixture
async def system(emulators, router, transactional_db, settings, tmp_path):
    """Emulators, a router, a data model for them, and a running engine.

    Returns ``(group, servers, engine)``; configuration backups go to
    ``tmp_path / "backups"``.
    """
    settings.CONFIG_BACKUP_ROOT = tmp_path / "backups"
    engines = []

    async def start(count: int = 3, seconds: float = 0.05, **poll):
        group = await emulators(count, seconds)
        servers = await sync_to_async(make_model)([s.url for s in group.servers], router.port,
                                                  str(router.workdir))
        engine = Engine(fast_settings(**poll))
        await engine.start()
        engines.append(engine)
        return group, servers, engine

    yield start
    for engine in engines:
        await engine.stop()


@pytest.fixture(scope="session")
def sshd():
    """A real OpenSSH server on loopback (its own keys), for routers reached over SSH."""
    from attpcdaq.remote.testing import LoopbackSshd

    with LoopbackSshd() as server:
        yield server


@pytest.fixture(autouse=True)
async def _close_test_connections():
    """Close the connection of the thread sync_to_async runs the tests' queries on.

    Left open, PostgreSQL refuses to drop the test database at the end.
    """
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()
