"""An emulator of dataRouter: takes the boards' GET frames over TCP and writes ``.graw`` files.

Each board (CoBo, MuTAnT) opens one TCP connection to the data port and sends GET
frames back to back (see :mod:`attpcdaq.get.graw`); the frame size field tells where
each ends. The router writes every frame, whole, into its data directory: one file per
AsAd per CoBo, named like the real router's files::

    CoBo_AsAd0_2017-03-01T15:30:12.345_0000.graw

The time (local, to the millisecond) is when the file's first frame arrived; the last
number counts the files of that AsAd, a new one opened when the next frame would take
the file past ``max_file_bytes`` (a frame is never split, and a file holds at least one
frame). When a board disconnects (its Stop), its files are flushed and closed.

The real name has no CoBo number because one router serves one CoBo. When several
CoBos send to one router anyway, each connection and CoBo gets files of its own, and a
name taken already (same AsAd, same millisecond) moves its time on by a millisecond, so
names stay unique and in the real format.

A sender that sends a malformed frame (or closes inside one) is disconnected with an
error in the log naming it; the frames before it stay written, and others go on.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from setproctitle import setproctitle

from ..get.graw import GrawError, decode_frame, frame_length

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_PORT",
    "DataRouterEmulator",
    "RouterStats",
    "add_router_parser",
    "main",
    "run_router",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 46005
DEFAULT_MAX_FILE_BYTES = 1 << 30
#: The largest GET frame (every channel and bucket read) is ~560 kB: far more is garbage.
MAX_FRAME_BYTES = 1 << 24
#: What ``pgrep -x`` finds, as it finds the real program.
ROUTER_PROCESS_TITLE = "dataRouter"
_PR_SET_NAME = 15


@dataclass(slots=True)
class RouterStats:
    """What the router has received since it started."""

    connections: int = 0
    frames: int = 0
    bytes: int = 0
    files: int = 0
    rejected: int = 0


class _GrawSeries:
    """The files of one AsAd of one sender: ``_0000``, then ``_0001``... past the size limit."""

    def __init__(self, router: DataRouterEmulator, asad: int) -> None:
        self._router = router
        self._asad = asad
        # Local time, as the real router names its files (the name has no zone).
        self._stamp = datetime.now().astimezone()
        self._count = 0
        self._file: BinaryIO | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        """Append one whole frame, opening the next file first when this one is full."""
        if self._file is not None and self._size + len(data) > self._router.max_file_bytes:
            self.close()
            self._count += 1
        if self._file is None:
            self._open()
        # A plain buffered write: a few hundred bytes per frame, cheaper than a thread hop,
        # and the frame is whole in the file before anything else runs.
        self._file.write(data)
        self._size += len(data)

    def _open(self) -> None:
        """Open the next file, moving the time on while the name of file 0 is taken."""
        while True:
            stamp = f"{self._stamp:%Y-%m-%dT%H:%M:%S}.{self._stamp.microsecond // 1000:03d}"
            path = self._router.data_dir / f"CoBo_AsAd{self._asad}_{stamp}_{self._count:04d}.graw"
            try:
                self._file = open(path, "xb")  # noqa: SIM115 - closed in close()
                break
            except FileExistsError:
                if self._count:
                    raise
                self._stamp += timedelta(milliseconds=1)
        self._size = 0
        self._router.files.append(path)
        self._router.stats.files += 1
        log.info("dataRouter: writing %s", path.name)

    def close(self) -> None:
        """Flush and close the open file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None


class DataRouterEmulator:
    """A dataRouter on one TCP port, writing the frames it receives into ``data_dir``.

    Parameters
    ----------
    host, port
        Where to listen; port 0 picks a free one (see :attr:`port` once started).
    data_dir
        The working directory the ``.graw`` files go into; it must exist.
    max_file_bytes
        A file's size limit: the next frame goes into a new file rather than past it.
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
        #: Every file opened, in order.
        self.files: list[Path] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active_connections(self) -> int:
        """How many senders are connected now."""
        return len(self._handlers)

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
        """Stop listening, disconnect every sender, and close every file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no sender is connected (so every file is closed), or raise TimeoutError."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def __aenter__(self) -> DataRouterEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Receive one sender's frames until it disconnects or sends garbage."""
        task = asyncio.current_task()
        self._handlers.add(task)
        self._idle.clear()
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "a peer already gone"
        self.stats.connections += 1
        series: dict[tuple[int, int], _GrawSeries] = {}
        try:
            await self._receive(reader, series)
        except GrawError as exc:
            self.stats.rejected += 1
            log.error("dataRouter: closing the connection from %s: malformed data at stream %s",
                      peer, exc)
        except OSError as exc:
            log.error("dataRouter: connection from %s failed: %s", peer, exc)
        finally:
            for one in series.values():
                one.close()
            writer.close()
            self._handlers.discard(task)
            if not self._handlers:
                self._idle.set()

    async def _receive(self, reader: asyncio.StreamReader,
                       series: dict[tuple[int, int], _GrawSeries]) -> None:
        """Write every frame from ``reader`` until it ends; raise GrawError on garbage."""
        offset = 0
        while True:
            data = await self._read_frame(reader, offset)
            if data is None:
                return
            try:
                frame = decode_frame(data)[0]
            except GrawError as exc:
                raise exc.shifted(offset) from None
            key = (frame.cobo_idx, frame.asad_idx)
            if key not in series:
                series[key] = _GrawSeries(self, frame.asad_idx)
            series[key].write(data)
            self.stats.frames += 1
            self.stats.bytes += len(data)
            offset += len(data)

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
                        metavar="N", help="start a new file of an AsAd rather than grow one "
                        f"past N bytes (default {DEFAULT_MAX_FILE_BYTES})")
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
        await stop.wait()
    log.info("dataRouter: stopped after %s", router.stats)
    return 0
