"""What an emulated ECC server's boards do with data, step by step.

Like the hardware: at Configure each CoBo links to its data router (Configure fails
when one cannot be reached); Start and Resume send events; Pause and Stop halt them
but keep the links; Breakup closes the links. The boards are hardware: they outlive
the server process, so a crashed or restarted server's boards go on acquiring until
they are configured again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..get.states import Operation
from ..get.xmldocs import DataLinkSet
from .boards import BoardStreamer, RouterUnreachable, check_routers_reachable, cobo_index


@dataclass(frozen=True)
class DataSettings:
    """How much data the emulated boards send while Running, and how they count."""

    rate_hz: float = 10.0
    hits_per_asad: int = 20
    connect_timeout: float = 3.0
    #: Event numbers from 0 at each Start (True) or counting on across runs (False).
    restart_counter: bool = True


class DataPathError(Exception):
    """A step failed on the data side; the message says which router."""


class DataPath:
    """The links and streams of one emulated ECC server's boards."""

    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings
        self.streamer: BoardStreamer | None = None

    async def step(self, operation: Operation, links: DataLinkSet | None) -> None:
        """Do the data side of ``operation``; raises DataPathError when it fails."""
        try:
            if operation is Operation.CONFIGURE:
                await self.close()
                if links is not None:
                    await self._link(links)
            elif operation is Operation.START and self.streamer is not None:
                await self.streamer.start()
            elif operation is Operation.RESUME and self.streamer is not None:
                await self.streamer.resume()
            elif operation in (Operation.STOP, Operation.PAUSE) and self.streamer is not None:
                await self.streamer.halt()
            elif operation is Operation.BREAKUP:
                await self.close()
        except RouterUnreachable as exc:
            raise DataPathError(f"{operation} failed: {exc}") from None

    async def _link(self, links: DataLinkSet) -> None:
        s = self.settings
        # The MuTAnT sends no frames here, but its router must answer all the same.
        await check_routers_reachable([link for link in links if cobo_index(link.sender)
                                       is None], s.connect_timeout)
        streamer = BoardStreamer(links, s.rate_hz, s.hits_per_asad,
                                 connect_timeout=s.connect_timeout,
                                 restart_counter=s.restart_counter)
        await streamer.connect()
        self.streamer = streamer

    async def close(self) -> None:
        """End every stream and close every link, letting the routers close their files."""
        if self.streamer is not None:
            streamer, self.streamer = self.streamer, None
            await streamer.disconnect()
