"""``attpcdaq emulate``: run emulators of the GET programs from a terminal.

``attpcdaq emulate ecc`` serves emulated getEccSoapServers until Ctrl-C, SIGTERM,
or ServerExit (or a crash) of the last one. Once every server listens it prints
one line ``listening on HOST:PORT`` per server.

Exit status: 0 on Ctrl-C, SIGTERM or ServerExit of every server; 1 when every
server has gone and one of them by an injected crash; 2 on bad arguments, a
configuration directory that does not exist, or a port that cannot be listened on.

Operations (OP): Describe, Prepare, Configure, Start, Stop, Pause, Resume,
Breakup, Undo. Faults can also be injected while serving, per server:
``curl -d '{"action": "fail", "operation": "Configure", "message": "no clock"}'
http://HOST:PORT/_emulator/fault`` (actions: fail, hang, crash, clear).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from setproctitle import setproctitle

from ..get.states import Operation
from ..runtime import freeze_startup_objects
from .datapath import DataSettings
from .ecc import DEFAULT_TRANSITION_SECONDS, EmulatedEcc, parse_transition_seconds
from .router import add_router_parser
from .server import EXAMPLE_CONFIG_DIR, EccEmulatorGroup, ListenError
from .soap import Generation

__all__ = ["add_emulate_parser", "run_ecc"]

#: What ``ps`` shows, so process checks find the emulator as they find the real server.
ECC_PROCESS_TITLE = "getEccSoapServer"
_OPERATIONS = [op.value for op in Operation]


def _transition_seconds(text: str) -> float | dict[Operation, float]:
    try:
        return parse_transition_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of servers >= 1, not {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535, not {text!r}")
    return int(text)


def add_emulate_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``attpcdaq emulate`` and its emulators: ``ecc`` and ``router``."""
    emulate = commands.add_parser("emulate", help="run emulators of the GET programs",
                                  description="Run emulators of the GET programs.")
    programs = emulate.add_subparsers(dest="program", required=True, metavar="PROGRAM")
    _add_ecc_parser(programs)
    add_router_parser(programs)


def _add_ecc_parser(programs: argparse._SubParsersAction) -> None:
    parser = programs.add_parser(
        "ecc", help="emulate getEccSoapServer (the ECC server)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8083, help="port of the first server; "
                        "the others take the next ones; 0 picks free ports (default 8083)")
    parser.add_argument("--count", type=_count, default=1, help="how many servers (default 1)")
    parser.add_argument("--config-dir", type=Path, default=EXAMPLE_CONFIG_DIR, metavar="DIR",
                        help="directory of describe-* and configure-* files (.xcfg, else .xml; "
                        "default: the example configs shipped with attpcdaq)")
    parser.add_argument("--transition-seconds", type=_transition_seconds, metavar="SPEC",
                        default=DEFAULT_TRANSITION_SECONDS,
                        help="how long a transition takes: SECONDS for every one (1.5), or "
                        "OP=SECONDS,... (Describe=1,Configure=3), where operations not named "
                        f"take {DEFAULT_TRANSITION_SECONDS:g} s "
                        f"(default {DEFAULT_TRANSITION_SECONDS:g})")
    for kind, what in (("fail", "fail after its usual time"), ("hang", "never finish"),
                       ("crash", "kill the server without answering")):
        parser.add_argument(f"--{kind}-next", action="append", default=[], metavar="OP",
                            choices=_OPERATIONS,
                            help=f"make the next OP of every server {what} (repeatable)")
    parser.add_argument("--event-rate", type=float, default=10.0, metavar="HZ",
                        help="events per second each board sends while Running (default 10)")
    parser.add_argument("--hits-per-asad", type=int, default=20, metavar="N",
                        help="channels hit per AsAd per event (default 20)")
    parser.add_argument("--no-data", action="store_true",
                        help="boards send no data, and Configure does not link them to the "
                        "data routers of the table")
    parser.add_argument("--event-counter", choices=("restart", "continue"), default="restart",
                        help="whether a board's event number starts at 0 at each Start "
                        "(restart, the default) or counts on across runs (continue): not "
                        "settled for real CoBos, so both are offered")
    parser.add_argument("--gsoap", choices=[str(g) for g in Generation],
                        default=str(Generation.UNQUALIFIED),
                        help="behave as a server built with gSOAP 2.8.30 or later (2.8, the "
                        "default: unqualified answers, prefixed arguments dropped) or an "
                        "older one (2.7: qualified answers, prefixed arguments read)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every request and transition to stderr")
    parser.set_defaults(run=run_ecc)


def run_ecc(args: argparse.Namespace) -> int:
    """Serve emulated ECC servers until told to stop; return the exit status."""
    setproctitle(ECC_PROCESS_TITLE)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    if not args.config_dir.is_dir():
        print(f"attpcdaq emulate ecc: configuration directory {args.config_dir} does not exist "
              "or is not a directory", file=sys.stderr)
        return 2
    try:
        data = None if args.no_data else DataSettings(
            args.event_rate, args.hits_per_asad,
            restart_counter=args.event_counter == "restart")
        group = EccEmulatorGroup(args.count, host=args.host, port=args.port,
                                 config_dir=args.config_dir,
                                 transition_seconds=args.transition_seconds, data=data,
                                 gsoap=args.gsoap)
    except (ValueError, OSError) as exc:
        print(f"attpcdaq emulate ecc: {exc}", file=sys.stderr)
        return 2
    for server in group.servers:
        _arm(server.ecc, args)
    try:
        return asyncio.run(_serve(group))
    except ListenError as exc:
        print(f"attpcdaq emulate ecc: {exc}", file=sys.stderr)
        return 2


def _arm(ecc: EmulatedEcc, args: argparse.Namespace) -> None:
    """Apply the --fail-next, --hang-next and --crash-next flags to one server."""
    for op in args.fail_next:
        ecc.fail_next(op)
    for op in args.hang_next:
        ecc.hang_next(op)
    for op in args.crash_next:
        ecc.crash_next(op)


async def _serve(group: EccEmulatorGroup) -> int:
    """Start the servers, announce them, and wait for a signal or the last one to go."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with group:
        for server in group.servers:
            host = f"[{server.host}]" if ":" in server.host else server.host
            print(f"listening on {host}:{server.port}")
        sys.stdout.flush()
        # The real server is C++: no collector pauses its answers; ours should not either.
        freeze_startup_objects()
        all_gone = asyncio.ensure_future(group.wait_stopped())
        signalled = asyncio.ensure_future(stop.wait())
        await asyncio.wait({all_gone, signalled}, return_when=asyncio.FIRST_COMPLETED)
        for task in (all_gone, signalled):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    crashed = any(server.stop_reason == "crash" for server in group.servers)
    return 1 if crashed and not stop.is_set() else 0
