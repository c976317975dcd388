"""Loopback HTTP peers that answer what no healthy ECC server would, for client tests.

The emulator answers correctly; these answer with silence, a dropped connection,
broken SOAP or a wrong status, over real sockets, by a handler the test writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read one HTTP request; return its head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")), 0)
    return head, await reader.readexactly(length)


class LoopbackPeers:
    """Servers on 127.0.0.1, each running a handler per connection, until closed."""

    def __init__(self) -> None:
        self._servers: list[asyncio.Server] = []

    async def start(self, handle: Handler) -> str:
        """Serve ``handle(reader, writer)`` on a free port; return ``http://127.0.0.1:P/``."""
        async def guarded(reader, writer):
            try:
                await handle(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client gave up first: nothing to answer
            finally:
                writer.close()

        server = await asyncio.start_server(guarded, "127.0.0.1", 0)
        self._servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    def close(self) -> None:
        """Stop every server."""
        for server in self._servers:
            server.close()
