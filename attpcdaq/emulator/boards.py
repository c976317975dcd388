"""Emulated boards that send data: CoBos streaming GET frames to their data routers.

A :class:`BoardStreamer` plays the boards of one ECC server: for each ``DataLink``
of a ``CoBo[N]`` it opens one TCP connection to the router named in the link at
Configure and, while Running, sends one frame per AsAd (4) per event at a steady
rate. The server keeps one link per sender, so each board has one connection.

``Mutant[master]`` links open no connection and send nothing: the MuTAnT's data
(trigger counters, over FDT) are not AsAd frames, and no test needs them. They are
still checked by :func:`check_routers_reachable`, as the hardware fails Configure when
any router of its table cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable

from ..get.graw import N_AGETS, N_CHANNELS, encode_frame, make_event
from ..get.xmldocs import DataLink

__all__ = [
    "ASADS_PER_COBO",
    "BoardStreamer",
    "RouterUnreachable",
    "check_routers_reachable",
    "cobo_index",
]

log = logging.getLogger(__name__)

ASADS_PER_COBO = 4
#: The CoBo's time stamps count a 100 MHz clock.
TICKS_PER_SECOND = 100_000_000
_SENDER = re.compile(r"CoBo\[(\d+)\]|(Mutant\[master\])")


class RouterUnreachable(ConnectionError):
    """A data router named in a DataLink did not accept a TCP connection."""

    def __init__(self, link: DataLink, detail: str) -> None:
        self.link = link
        self.detail = detail
        super().__init__(f"data router {link.router_name} at {link.router_ip}:"
                         f"{link.router_port} (for {link.sender}) cannot be reached: {detail}")


def cobo_index(sender: str) -> int | None:
    """Return N for ``CoBo[N]``, None for ``Mutant[master]``; raise ValueError otherwise."""
    match = _SENDER.fullmatch(sender)
    if match is None:
        raise ValueError(f"unknown data sender {sender!r} (expected CoBo[N] or Mutant[master])")
    if match[1] is not None and int(match[1]) > 255:
        raise ValueError(f"data sender {sender!r}: a CoBo number fits one byte (0-255)")
    return None if match[2] else int(match[1])


def _describe(exc: BaseException, timeout: float) -> str:
    """Say in words why a connection failed."""
    if isinstance(exc, TimeoutError):
        return f"no connection within {timeout:g} s"
    return str(exc) or type(exc).__name__


async def _connect(link: DataLink, timeout: float) -> asyncio.StreamWriter:
    """Open a TCP connection to the link's router, or raise RouterUnreachable."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(link.router_ip, link.router_port)
    except (OSError, TimeoutError) as exc:
        raise RouterUnreachable(link, _describe(exc, timeout)) from exc
    return writer


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection, ignoring a peer that has gone already."""
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def check_routers_reachable(links: Iterable[DataLink], timeout: float = 3.0) -> None:
    """Connect once to every router of ``links`` (at the same time) and hang up.

    Parameters
    ----------
    links
        A ``DataLinkSet`` or any data links; each router address is tried once.
    timeout
        Seconds each connection may take.

    Raises
    ------
    RouterUnreachable
        Naming the router (and its sender) of the first link, in order, that failed.
    """
    by_address = {}
    for link in links:
        by_address.setdefault((link.router_ip, link.router_port), link)
    results = await asyncio.gather(*(_connect(link, timeout) for link in by_address.values()),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, asyncio.StreamWriter):
            await _close(result)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class BoardStreamer:
    """The CoBos of a data link table: linked at Configure, streaming while Running.

    As the hardware does (GET-PROTOCOL.md, "Data files"), each ``CoBo[N]`` opens its
    TCP connection to its router at Configure (:meth:`connect`), sends one frame per
    AsAd per event while Running (:meth:`start`, :meth:`resume`), keeps the
    connection through Pause and Stop (:meth:`halt`) and closes it at Breakup
    (:meth:`disconnect`).

    Whether a real CoBo's event counter restarts at each Start is not settled:
    ``restart_counter`` chooses (True: event 0 at every Start, so the router begins
    a new file set; False: the count goes on across runs). Resume always goes on.

    Parameters
    ----------
    links
        A ``DataLinkSet`` (or data links): one connection per ``CoBo[N]`` link.
    rate_hz
        Events per second, per link.
    hits_per_asad
        Channels that fire per AsAd and event (0 to 272), 4 time buckets each.
    connect_timeout
        Seconds a connection to a router may take in :meth:`connect`.
    seed
        Changes the content of the frames (the same seed gives the same data).
    restart_counter
        Start event numbers at 0 at each Start (True) or go on counting (False).

    Raises
    ------
    ValueError
        For a sender other than ``CoBo[N]`` or ``Mutant[master]``, or bad numbers.
    """

    def __init__(self, links: Iterable[DataLink], rate_hz: float, hits_per_asad: int, *,
                 connect_timeout: float = 5.0, seed: int = 0,
                 restart_counter: bool = True) -> None:
        links = list(links)
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, not {rate_hz}")
        if not 0 <= hits_per_asad <= N_AGETS * N_CHANNELS:
            raise ValueError(f"hits_per_asad must be 0-{N_AGETS * N_CHANNELS}, "
                             f"not {hits_per_asad}")
        self.links = [link for link in links if cobo_index(link.sender) is not None]
        self.rate_hz = rate_hz
        self.hits_per_asad = hits_per_asad
        self.connect_timeout = connect_timeout
        self.seed = seed
        self.restart_counter = restart_counter
        #: Whole events (4 frames) sent per link since the last Start.
        self.events_sent: dict[DataLink, int] = {}
        #: The next event number of each link.
        self.next_event: dict[DataLink, int] = dict.fromkeys(self.links, 0)
        #: Links whose connection broke, and why.
        self.failures: dict[DataLink, OSError] = {}
        self._writers: dict[DataLink, asyncio.StreamWriter] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        """Whether the boards are sending events."""
        return bool(self._tasks)

    async def connect(self) -> None:
        """Open every CoBo's connection to its router (Configure).

        Raises
        ------
        RouterUnreachable
            When a router cannot be reached; no connection is left open then.
        """
        await self.disconnect()
        results = await asyncio.gather(
            *(_connect(link, self.connect_timeout) for link in self.links),
            return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            for result in results:
                if isinstance(result, asyncio.StreamWriter):
                    await _close(result)
            raise failed
        self._writers = dict(zip(self.links, results, strict=True))
        self.failures = {}

    async def start(self) -> None:
        """Begin a run's acquisition (Start): events from 0, or on, as chosen.

        Links not open yet (a streamer used on its own) are opened first.

        Raises
        ------
        RouterUnreachable
            When a link had to be opened and its router cannot be reached.
        """
        if self.links and not self._writers:
            await self.connect()
        if self.restart_counter:
            self.next_event = dict.fromkeys(self.links, 0)
        self.events_sent = dict.fromkeys(self.links, 0)
        await self.resume()

    async def resume(self) -> None:
        """Send events on every open link until :meth:`halt`.

        Raises
        ------
        RuntimeError
            When already sending, or no link is open (never configured, or broken up).
        """
        if self.running:
            raise RuntimeError("the boards are sending already")
        if self.links and not self._writers:
            raise RuntimeError("the boards are not linked to their routers: Configure first")
        self._stopping = asyncio.Event()
        self._tasks = [asyncio.create_task(self._stream(link, writer), name=link.sender)
                       for link, writer in self._writers.items()
                       if not writer.is_closing()]

    async def halt(self, timeout: float = 10.0) -> None:
        """Stop sending after the current event (Pause, Stop); the links stay open.

        A stream whose router does not take its data within ``timeout`` seconds is cut.
        """
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def disconnect(self, timeout: float = 10.0) -> None:
        """Stop sending and close every link (Breakup, or the end of the emulator)."""
        await self.halt(timeout)
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            await _close(writer)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop everything: :meth:`disconnect`."""
        await self.disconnect(timeout)

    async def _stream(self, link: DataLink, writer: asyncio.StreamWriter) -> None:
        """Send events on one link until halted; record a broken link."""
        try:
            await self._send_events(link, writer)
            await writer.drain()
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except OSError as exc:
            self.failures[link] = exc
            log.warning("%s: the link to data router %s at %s:%s broke: %s", link.sender,
                        link.router_name, link.router_ip, link.router_port, exc)
            writer.transport.abort()

    async def _send_events(self, link: DataLink, writer: asyncio.StreamWriter) -> None:
        """Write one frame per AsAd per event, paced at the rate, until halted."""
        loop = asyncio.get_running_loop()
        cobo, period = cobo_index(link.sender), 1 / self.rate_hz
        due = loop.time()
        while not self._stopping.is_set():
            event = self.next_event[link]
            # The time stamp follows the event number, as a common trigger's would.
            stamp = round(event * period * TICKS_PER_SECOND) % (1 << 48)
            for asad in range(ASADS_PER_COBO):
                writer.write(encode_frame(make_event(cobo, asad, event, self.hits_per_asad,
                                                     event_time=stamp, seed=self.seed)))
            await writer.drain()
            self.next_event[link] = event + 1
            self.events_sent[link] = self.events_sent.get(link, 0) + 1
            # Keep the rate, but do not burst to catch up after falling behind.
            due = max(due + period, loop.time() - period)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(due):
                    await self._stopping.wait()
