"""Servers for the wire tests: the gSOAP-built ECC server and the emulator in both modes.

The gSOAP server is built once per session (cached by a hash of its sources, see
tests/gsoap/build.py). Without soapcpp2 or g++ the tests fail, saying to run
scripts/system-deps: a skipped wire test would hide what it is there to show.
"""

from dataclasses import dataclass, field

import pytest
from gsoap.build import BuildError, GsoapServer, build

from attpcdaq.emulator.server import EccServer

SERVERS = ("gsoap", "emulator-2.7", "emulator-2.8")


@dataclass
class Server:
    """One server under test: its kind (a SERVERS name), URL and handle."""

    kind: str
    url: str
    handle: object = field(repr=False)

    @property
    def unqualified(self) -> bool:
        """True where answer children are unqualified and prefixed requests dropped."""
        return self.kind != "emulator-2.7"


@pytest.fixture(scope="session")
def gsoap_binary(request, tmp_path_factory):
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    root = cache.mkdir("gsoap") if cache is not None else tmp_path_factory.mktemp("gsoap")
    try:
        return build(root)
    except BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


async def start_server(kind: str, binary) -> Server:
    """Start a fresh server of ``kind``, Idle, on a free loopback port."""
    if kind == "gsoap":
        server = GsoapServer(binary)
        server.start()
        return Server(kind, server.url, server)
    emulator = EccServer(host="127.0.0.1", port=0, transition_seconds=0,
                         gsoap=kind.removeprefix("emulator-"))
    await emulator.start()
    return Server(kind, emulator.url, emulator)


async def stop_server(server: Server) -> None:
    if isinstance(server.handle, GsoapServer):
        server.handle.stop()
    else:
        await server.handle.stop()


@pytest.fixture(params=SERVERS)
async def server(request, gsoap_binary):
    """Each wire test runs against every kind of server."""
    started = await start_server(request.param, gsoap_binary)
    yield started
    await stop_server(started)


@pytest.fixture
async def pair(gsoap_binary):
    """The gSOAP server and the emulator in 2.8 mode, side by side."""
    servers = []
    try:
        for kind in ("gsoap", "emulator-2.8"):
            servers.append(await start_server(kind, gsoap_binary))
        yield servers
    finally:
        for started in servers:
            await stop_server(started)
