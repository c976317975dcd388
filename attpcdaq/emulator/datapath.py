"""What an emulated ECC server's boards do with data, step by step.

Like the hardware: Configure fails when a data router of the table cannot be
reached; Start opens the boards' streams to their routers; Pause and Stop end
them (the router then closes its files); Resume opens new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..get.states import Operation
from ..get.xmldocs import DataLinkSet
from .boards import BoardStreamer, RouterUnreachable, check_routers_reachable


@dataclass(frozen=True)
class DataSettings:
    """How much data the emulated boards send while Running."""

    rate_hz: float = 10.0
    hits_per_asad: int = 20
    connect_timeout: float = 3.0


class DataPathError(Exception):
    """A step failed on the data side; the message says which router."""


class DataPath:
    """The streams of one emulated ECC server's boards."""

    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings
        self.streamer: BoardStreamer | None = None

    async def step(self, operation: Operation, links: DataLinkSet | None) -> None:
        """Do the data side of ``operation``; raises DataPathError when it fails."""
        try:
            if operation is Operation.CONFIGURE and links is not None:
                await check_routers_reachable(links, self.settings.connect_timeout)
            elif operation in (Operation.START, Operation.RESUME) and links is not None:
                streamer = BoardStreamer(links, self.settings.rate_hz,
                                         self.settings.hits_per_asad,
                                         connect_timeout=self.settings.connect_timeout)
                await streamer.start()
                self.streamer = streamer
            elif operation in (Operation.STOP, Operation.PAUSE):
                await self.close()
        except RouterUnreachable as exc:
            raise DataPathError(f"{operation} failed: {exc}") from None

    async def close(self) -> None:
        """End every stream, letting the routers close their files."""
        if self.streamer is not None:
            streamer, self.streamer = self.streamer, None
            await streamer.stop()
