"""Fixtures of the protocol-layer tests: loopback peers that misbehave."""

import pytest

from attpcdaq.emulator.misbehaving import LoopbackPeers, read_request


@pytest.fixture
async def serve():
    """Start a loopback server running ``handle(reader, writer)`` per connection."""
    peers = LoopbackPeers()
    yield peers.start
    peers.close()


@pytest.fixture
def peer(serve):
    """Start a loopback server that reads each request, then runs ``behaviour(writer)``."""
    async def start(behaviour):
        async def handle(reader, writer):
            await read_request(reader)
            await behaviour(writer)
        return await serve(handle)
    return start
