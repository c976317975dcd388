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
                          reload_interval=0.5, heartbeat_interval=0.5, router_interval=0.3,
                          stop_patience=1.0)


def make_model(urls: list[str], router_port: int, workdir: str,
               more_routers: list[tuple[int, str]] = ()) -> list[ECCServer]:
    """An active experiment, data routers, and one CoBo per URL, configured.

    CoBo[0] sends to router0 (``router_port``, ``workdir``); CoBo[N] to the Nth of
    ``more_routers`` when there is one, else to router0 too. A real dataRouter serves
    one connection at a time, so a router shared by two CoBos takes only the first.
    """
    Experiment.objects.create(name="e20009 test", is_active=True)
    routers = [DataRouter.objects.create(name=f"router{number}", ip_address="127.0.0.1",
                                         port=port, working_dir=directory)
               for number, (port, directory) in enumerate([(router_port, workdir),
                                                           *more_routers])]
    servers = []
    for number, url in enumerate(urls):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        server = ECCServer.objects.create(name=f"CoBo[{number}]", ip_address="127.0.0.1",
                                          port=port, config_dir=str(EXAMPLE_CONFIG_DIR))
        router = routers[number] if number < len(routers) else routers[0]
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
def more_routers(tmp_path):
    """Start router1, router2, ... processes: ``more_routers(n)`` returns them."""
    started: list[RouterProcess] = []

    def start(count: int) -> list[RouterProcess]:
        for number in range(len(started) + 1, count + 1):
            workdir = tmp_path / f"router{number}"
            workdir.mkdir()
            started.append(RouterProcess(workdir))
        return started[:count]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def gsoap():
    """The gSOAP generation the emulated servers behave as; parametrize to change it."""
    return "2.8"


@pytest.fixture
async def emulators(gsoap):
    """Start N emulated ECC servers whose boards stream to their routers."""
    groups = []

    async def start(count: int = 3, seconds: float = 0.05) -> EccEmulatorGroup:
        group = EccEmulatorGroup(count=count, host="127.0.0.1", port=0, transition_seconds=seconds,
                                 data=DataSettings(rate_hz=20, hits_per_asad=4), gsoap=gsoap)
        await group.__aenter__()
        groups.append(group)
        return group

    yield start
    for group in groups:
        await group.__aexit__(None, None, None)


@pytest.fixture
async def system(emulators, router, more_routers, transactional_db, settings, tmp_path):
    """Emulators, a data router per CoBo, a data model for them, and a running engine.

    Returns ``(group, servers, engine)``; configuration backups go to
    ``tmp_path / "backups"``. CoBo[0] sends to the ``router`` fixture (router0).
    """
    settings.CONFIG_BACKUP_ROOT = tmp_path / "backups"
    engines = []

    async def start(count: int = 3, seconds: float = 0.05, **poll):
        group = await emulators(count, seconds)
        others = [(r.port, str(r.workdir)) for r in more_routers(count - 1)]
        servers = await sync_to_async(make_model)([s.url for s in group.servers], router.port,
                                                  str(router.workdir), others)
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
