"""An emulator of dataRouter: takes the boards' GET frames over TCP and writes ``.graw`` files.

A board (CoBo, MuTAnT) opens a TCP connection to the data port and sends GET frames
back to back (see :mod:`attpcdaq.get.graw`); the frame size field tells where each
ends. The router writes every frame, whole, into its working directory: one file
set per AsAd per CoBo, named as the current GET routers name theirs::

    CoBo0_AsAd0_2021-03-01T15:30:12.345_0000.graw
    MuTanT_2021-03-01T15:30:12.345_0000.graw

(older routers wrote ``CoBo_AsAd0_...``, without the CoBo number; the run control
accepts both, see :func:`attpcdaq.remote.names.parse_graw_name`). The time, local and
to the millisecond, is when the set's first frame arrived; the last number counts the
files of the set.

- **A new file set** (new time, ``_0000``) starts for a (CoBo, AsAd) at its first frame,
  and whenever a frame's eventIdx is not above the previous one of that (CoBo, AsAd):
  the board's event counter went back. Not per run, nor per connection: a board that
  reconnects and counts on appends to the same names. (Whether a CoBo's counter
  restarts at each Start is not settled; when it does not, the next run appends
  under the old names.) Should the new name be taken already (a second new set in the
  same millisecond), its time moves on by a millisecond.
- **Rotation:** once a frame takes a file past ``max_file_bytes`` (1 GiB, as the real
  router), the next frames go to the next number. The frame that crosses the limit is
  written whole into the file it crossed; a file holds at least one frame.
- **Each frame opens and closes its file**, so a file the run control moved away is
  created again, under the same name, by the next frame.
- **One TCP connection at a time:** a second connection is accepted but not read
  until the first has closed; then it is served, its data all there. A connection
  that closes inside a frame loses only that partial frame.

A sender that sends a malformed frame is disconnected with an error in the log naming
it; the frames before stay written, and the next connection is served.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import struct
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from setproctitle import setproctitle

from ..get.graw import GrawError, decode_frame, frame_length
from ..runtime import freeze_startup_objects

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_PORT",
    "MUTANT_FRAME_TYPE",
    "DataRouterEmulator",
    "RouterStats",
    "add_router_parser",
    "graw_file_name",
    "main",
    "run_router",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 46005
#: 1 GiB (1024 MiB): a file is rotated once a frame takes it past this.
DEFAULT_MAX_FILE_BYTES = 1 << 30
#: The largest GET frame (every channel and bucket read) is ~560 kB: far more is garbage.
MAX_FRAME_BYTES = 1 << 24
#: The frameType of the MuTAnT's data frames (MFM's numbering; CoBo frames are 1 and 2).
#: GET-PROTOCOL.md documents only CoBo frames: how the real router tells the MuTAnT's
#: frames is not settled, and this is the emulator's choice.
MUTANT_FRAME_TYPE = 8
#: What ``pgrep -x`` finds, as it finds the real program.
ROUTER_PROCESS_TITLE = "dataRouter"
_PR_SET_NAME = 15
_FRAME_TYPE = struct.Struct(">H")
_EVENT_IDX = struct.Struct(">I")
_EVENT_IDX_AT = 22


@dataclass(slots=True)
class RouterStats:
    """What the router has received since it started."""

    connections: int = 0  # accepted, waiting ones included
    frames: int = 0
    bytes: int = 0
    files: int = 0  # distinct names written (a re-created file counts once)
    rejected: int = 0


def graw_file_name(source: tuple[int, int] | None, stamp: datetime, number: int) -> str:
    """The name of file ``number`` of a set begun at ``stamp``.

    Parameters
    ----------
    source
        ``(coboIdx, asadIdx)`` of a CoBo's frames, None for the MuTAnT's.
    stamp
        When the set's first frame arrived (local time; the name has no zone).
    number
        Which file of the set, from 0.
    """
    # The current routers' form; GET-PROTOCOL.md: "MuTAnT: MuTanT_...". That the MuTAnT's
    # name carries no AsAd (MuTanT_<time>_<NNNN>) is not settled; this form is the one
    # the run control's name check accepts.
    prefix = "MuTanT" if source is None else f"CoBo{source[0]}_AsAd{source[1]}"
    return (f"{prefix}_{stamp:%Y-%m-%dT%H:%M:%S}.{stamp.microsecond // 1000:03d}"
            f"_{number:04d}.graw")


class _FileSet:
    """The files of one (CoBo, AsAd), or of the MuTAnT: ``_0000``, then ``_0001``..."""

    def __init__(self, router: DataRouterEmulator, source: tuple[int, int] | None) -> None:
        self._router = router
        self._source = source
        self._stamp = datetime.now()
        self._number = 0
        self.last_event: int | None = None
        self.path = router.data_dir / graw_file_name(source, self._stamp, 0)
        # A name in use (a second set of this source within the millisecond, or an
        # earlier router's file) moves the time on: a set never appends to another's file.
        while self.path.name in router.names or self.path.exists():
            self._stamp += timedelta(milliseconds=1)
            self.path = router.data_dir / graw_file_name(source, self._stamp, 0)

    def write(self, data: bytes, event_idx: int) -> None:
        """Append one whole frame; once it takes the file past the limit, move to the next."""
        new = self.path.name not in self._router.names
        # Opened and closed per frame, as the real router: a file moved away meanwhile is
        # created again. A few hundred bytes per frame: cheaper than a thread hop.
        with open(self.path, "ab") as file:
            file.write(data)
            size = file.tell()
        if new:
            self._router.names.add(self.path.name)
            self._router.files.append(self.path)
            self._router.stats.files += 1
            log.info("dataRouter: writing %s", self.path.name)
        self.last_event = event_idx
        # The file's own size: a file moved away and created again starts from 0.
        if size > self._router.max_file_bytes:
            self._number += 1
            self.path = self._router.data_dir / graw_file_name(self._source, self._stamp,
                                                               self._number)


class DataRouterEmulator:
    """A dataRouter on one TCP port, writing the frames it receives into ``data_dir``.

    Parameters
    ----------
    host, port
        Where to listen; port 0 picks a free one (see :attr:`port` once started).
    data_dir
        The working directory the ``.graw`` files go into; it must exist.
    max_file_bytes
        A file's size limit: once a frame takes a file past it, the next frames of
        that AsAd go into the set's next file.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 data_dir: str | os.PathLike = ".",
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        if max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be at least 1, not {max_file_bytes}")
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir)
        self.max_file_bytes = max_file_bytes
        self.stats = RouterStats()
        #: Every file written, in the order of their first frames.
        self.files: list[Path] = []
        #: The names of :attr:`files`.
        self.names: set[str] = set()
        #: The file set of each (coboIdx, asadIdx), None for the MuTAnT: kept across
        #: connections, as the real router keeps them.
        self._sets: dict[tuple[int, int] | None, _FileSet] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        # asyncio.Lock wakes its waiters in order: connections are served as they came.
        self._turn = asyncio.Lock()
        self._waiting = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active_connections(self) -> int:
        """How many senders are connected now, the one served and those waiting."""
        return len(self._handlers)

    @property
    def waiting_connections(self) -> int:
        """How many connections are accepted but not read, waiting for the one served."""
        return self._waiting

    async def start(self) -> None:
        """Listen; after this, :attr:`port` is the port listened on.

        Raises
        ------
        OSError
            When the address cannot be listened on.
        """
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and disconnect every sender (the served one and those waiting)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no sender is connected (so every frame received is written).

        Raises
        ------
        TimeoutError
            When a sender is still connected after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def __aenter__(self) -> DataRouterEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Wait for the connection served before to close, then write this one's frames."""
        task = asyncio.current_task()
        self._handlers.add(task)
        self._idle.clear()
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "a peer already gone"
        self.stats.connections += 1
        try:
            # Not read while it waits: the sender's data stay in the kernel's buffers (and
            # the sender blocks once they are full), as with the real router.
            writer.transport.pause_reading()
            if self._turn.locked():
                log.info("dataRouter: connection from %s waits for the one served", peer)
            self._waiting += 1
            try:
                await self._turn.acquire()
            finally:
                self._waiting -= 1
            try:
                writer.transport.resume_reading()
                log.info("dataRouter: serving the connection from %s", peer)
                await self._receive(reader)
            finally:
                self._turn.release()
        except GrawError as exc:
            self.stats.rejected += 1
            log.error("dataRouter: closing the connection from %s: malformed data at stream %s",
                      peer, exc)
        except OSError as exc:
            log.error("dataRouter: connection from %s failed: %s", peer, exc)
        finally:
            writer.close()
            self._handlers.discard(task)
            if not self._handlers:
                self._idle.set()

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        """Write every frame from ``reader`` until it ends; raise GrawError on garbage."""
        offset = 0
        while True:
            data = await self._read_frame(reader, offset)
            if data is None:
                return
            try:
                source, event_idx = _identify(data)
            except GrawError as exc:
                raise exc.shifted(offset) from None
            self._write(source, event_idx, data)
            offset += len(data)

    def _write(self, source: tuple[int, int] | None, event_idx: int, data: bytes) -> None:
        """Write one frame into its source's set, starting a new set if the counter went back."""
        files = self._sets.get(source)
        if files is None or (files.last_event is not None and event_idx <= files.last_event):
            files = self._sets[source] = _FileSet(self, source)
        # A file that cannot be written (directory gone, disk full) raises OSError, which
        # ends the connection; the next frame of the set tries the same file again.
        files.write(data, event_idx)
        self.stats.frames += 1
        self.stats.bytes += len(data)

    @staticmethod
    async def _read_frame(reader: asyncio.StreamReader, offset: int) -> bytes | None:
        """Read one whole frame's bytes, or None at a clean end of the stream."""
        try:
            prefix = await reader.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise GrawError(f"the stream ended {len(exc.partial)} bytes into a frame",
                                offset) from None
            return None
        try:
            length = frame_length(prefix)
        except GrawError as exc:
            raise exc.shifted(offset) from None
        if length > MAX_FRAME_BYTES:
            raise GrawError(f"frameSize says {length} bytes, more than any GET frame "
                            f"({MAX_FRAME_BYTES})", offset + 1)
        try:
            return prefix + await reader.readexactly(length - 4)
        except asyncio.IncompleteReadError as exc:
            raise GrawError(f"the stream ended {len(exc.partial) + 4} bytes into a "
                            f"{length}-byte frame", offset) from None


def _identify(data: bytes) -> tuple[tuple[int, int] | None, int]:
    """Return ``((coboIdx, asadIdx) or None for the MuTAnT, eventIdx)`` of a whole frame.

    A CoBo frame is decoded (and so checked) whole. Of a MuTAnT frame only the common
    header is read: its eventIdx is taken where a CoBo frame has it (the emulator's
    choice; the MuTAnT frame's layout is not in GET-PROTOCOL.md).

    Raises
    ------
    GrawError
        When the frame is malformed (offsets from its start).
    """
    if _FRAME_TYPE.unpack_from(data, 5)[0] == MUTANT_FRAME_TYPE:
        # frame_length has checked that the frame holds a header's bytes.
        return None, _EVENT_IDX.unpack_from(data, _EVENT_IDX_AT)[0]
    frame = decode_frame(data)[0]
    return (frame.cobo_idx, frame.asad_idx), frame.event_idx


def set_process_title(title: str) -> None:
    """Set what ``ps`` shows and the kernel's name for the process, which ``pgrep -x`` matches.

    setproctitle sets both on Linux; prctl(PR_SET_NAME) covers a build that does not.
    """
    setproctitle(title)
    comm = Path("/proc/self/comm")
    if comm.exists() and comm.read_text().strip() != title[:15]:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(title.encode()[:15]), 0, 0, 0)


def _port(text: str) -> int:
    """Parse a TCP port, 0 for any free one."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535, not {text!r}")
    return int(text)


def _size(text: str) -> int:
    """Parse a file size limit in bytes."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of bytes >= 1, not {text!r}")
    return int(text)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``attpcdaq emulate router`` to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"data port; 0 picks a free one (default {DEFAULT_PORT})")
    parser.add_argument("--data-dir", type=Path, required=True, metavar="DIR",
                        help="working directory the .graw files are written into")
    parser.add_argument("--max-file-bytes", type=_size, default=DEFAULT_MAX_FILE_BYTES,
                        metavar="N", help="once a frame takes a file past N bytes, write the next "
                        f"frames of its AsAd into the next file (default "
                        f"{DEFAULT_MAX_FILE_BYTES}, 1 GiB)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log connections and files to stderr")
    parser.set_defaults(run=run_router)


def add_router_parser(emulate_subparsers: argparse._SubParsersAction) -> None:
    """Register ``attpcdaq emulate router`` under the ``emulate`` command group."""
    parser = emulate_subparsers.add_parser(
        "router", help="emulate dataRouter (writes the boards' data as .graw files)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    """Run the router emulator as a program of its own; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="attpcdaq emulate router", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run_router(parser.parse_args(argv))


def run_router(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 then, 2 for a bad data directory or port."""
    directory = args.data_dir
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        print(f"attpcdaq emulate router: data directory {directory} does not exist, is not a "
              "directory, or is not writable", file=sys.stderr)
        return 2
    set_process_title(ROUTER_PROCESS_TITLE)
    # The real dataRouter writes into its working directory, which is how the run
    # control finds that directory from the process: do the same.
    directory = directory.resolve()
    os.chdir(directory)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    router = DataRouterEmulator(args.host, args.port, directory, args.max_file_bytes)
    try:
        return asyncio.run(_serve(router))
    except OSError as exc:
        print(f"attpcdaq emulate router: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 2


async def _serve(router: DataRouterEmulator) -> int:
    """Listen, announce it, and close every file on a signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with router:
        host = f"[{router.host}]" if ":" in router.host else router.host
        print(f"listening on {host}:{router.port}", flush=True)
        freeze_startup_objects()  # as in `emulate ecc`: the real one has no collector
        await stop.wait()
    log.info("dataRouter: stopped after %s", router.stats)
    return 0
