"""Emulated ECC servers on real sockets: SOAP over HTTP with aiohttp, many per process.

Each :class:`EccServer` listens on its own port with its own aiohttp runner, so one
can crash or exit while the others serve on. Like gSOAP without keep-alive, every
answer closes its connection (``Connection: close``). Any ``POST`` is a SOAP request
(getEccSoapServer ignores the path and the SOAPAction), except the control
endpoint ``POST /_emulator/fault``, which takes JSON such as
``{"action": "fail", "operation": "Configure", "message": "no clock"}`` (actions:
fail, hang, crash, clear) and answers ``{"ok": true, "faults": {...}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Coroutine
from pathlib import Path

from aiohttp import web

from ..get.states import Operation
from . import soap
from .datapath import DataPath, DataSettings
from .ecc import (
    DEFAULT_TRANSITION_SECONDS,
    Answer,
    EmulatedCrash,
    EmulatedEcc,
    FaultKind,
    TransitionSeconds,
)

__all__ = ["CONTROL_PATH", "EXAMPLE_CONFIG_DIR", "EccEmulatorGroup", "EccServer", "ListenError"]

log = logging.getLogger(__name__)

#: The configuration directory shipped with the package (CoBo 0-3, the MuTAnT).
EXAMPLE_CONFIG_DIR = Path(__file__).with_name("example_configs")
#: Where tests and people inject faults over HTTP.
CONTROL_PATH = "/_emulator/fault"
_XML = "text/xml"
# A stopping server gives requests in progress this long before cancelling them.
_SHUTDOWN_SECONDS = 1.0


class ListenError(OSError):
    """A server could not listen on its address (port in use, unknown host...)."""


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket for ``host:port``, ready for aiohttp to listen on."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        # Lets a restarted server take its port back while old connections linger.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _xml(body: bytes, status: int = 200) -> web.Response:
    response = web.Response(body=body, status=status, content_type=_XML, charset="utf-8")
    response.force_close()  # gSOAP without keep-alive: one request per connection
    return response


class EccServer:
    """One emulated getEccSoapServer on one port; ``ecc`` is its state machine.

    Parameters
    ----------
    host, port
        Where to listen; port 0 picks a free port (read :attr:`port` after start).
    config_dir, transition_seconds
        Passed to :class:`~attpcdaq.emulator.ecc.EmulatedEcc`.
    data
        How the boards send data (None: no data side). The boards belong to the
        server object, not to its process: they survive :meth:`crash` and
        :meth:`restart`, as hardware does, and stop at :meth:`stop`.
    gsoap
        The gSOAP generation to behave as, ``"2.8"`` (current GET releases,
        the default) or ``"2.7"`` (see :class:`~attpcdaq.emulator.soap.Generation`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 config_dir: Path | str = EXAMPLE_CONFIG_DIR,
                 transition_seconds: TransitionSeconds = DEFAULT_TRANSITION_SECONDS,
                 data: DataSettings | None = None,
                 gsoap: soap.Generation | str = soap.Generation.UNQUALIFIED) -> None:
        self.host = host
        self.port = port
        self.generation = soap.Generation(gsoap)
        self.boards = DataPath(data) if data is not None else None
        self.ecc = EmulatedEcc(config_dir, transition_seconds, self.boards)
        self._config_dir = config_dir
        #: Set once the server has stopped; :attr:`stop_reason` says why.
        self.stopped = asyncio.Event()
        self.stop_reason: str | None = None
        self._runner: web.AppRunner | None = None
        self._stop_task: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<EccServer {self.url} {self.ecc!r}>"

    @property
    def url(self) -> str:
        """The address clients use, ``http://HOST:PORT/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def serving(self) -> bool:
        """True between start and stop (or crash, or ServerExit)."""
        return self._runner is not None

    async def start(self) -> None:
        """Listen and serve.

        Raises
        ------
        ListenError
            When the address cannot be listened on.
        """
        app = web.Application()
        app.router.add_post(CONTROL_PATH, self._control)
        app.router.add_route("POST", "/{path:.*}", self._soap)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=_SHUTDOWN_SECONDS)
        await runner.setup()
        try:
            sock = _listen(self.host, self.port)
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        self._runner, self._stop_task, self.stop_reason = runner, None, None
        self.stopped.clear()

    async def stop(self, reason: str = "stop") -> None:
        """Stop listening, cancel what runs and close every connection.

        The boards stop too, except when the process "dies" (``crash``) or
        :meth:`restart` takes its place: the hardware goes on acquiring then.
        """
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(reason))
        # Shielded: a cancelled caller must not leave the runner half cleaned up.
        await asyncio.shield(self._stop_task)
        if reason not in ("crash", "restart"):
            await self.stop_boards()

    async def stop_boards(self) -> None:
        """Stop the boards' streams and close their links to the routers."""
        if self.boards is not None:
            await self.boards.close()

    async def _stop(self, reason: str) -> None:
        runner = self._runner
        self.ecc.kill()
        if runner is not None:
            await runner.cleanup()
        self._runner = None
        self.stop_reason = reason
        self.stopped.set()
        log.info("ECC server %s stopped (%s)", self.url, reason)

    async def crash(self) -> None:
        """Die like a killed process: stop listening, drop every connection unanswered."""
        await self._drop_everything()
        await self.stop("crash")

    async def restart(self) -> None:
        """Start again on the same port with a fresh Idle state machine, as a new process.

        The boards are not told: those that were acquiring go on (GET-PROTOCOL.md).
        """
        if self.serving:
            await self.stop("restart")
        self.ecc = EmulatedEcc(self._config_dir, self.ecc.durations, self.boards)
        await self.start()

    async def _drop_everything(self) -> None:
        runner = self._runner
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()  # closes the listening socket at once
        for connection in runner.server.connections if runner.server else ():
            if connection.transport is not None:
                connection.transport.abort()  # no answer, no graceful close
        self.ecc.kill()

    def _spawn(self, coroutine: Coroutine) -> None:
        """Run ``coroutine`` outside the handler: stopping waits for handlers to end."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _soap(self, request: web.Request) -> web.StreamResponse:
        """Serve one SOAP request, whatever its path."""
        try:
            call = soap.parse_request(await request.read(), self.generation)
        except soap.SoapError as exc:
            log.info("ECC server %s: SOAP fault: %s", self.url, exc)
            return _xml(soap.fault(str(exc), exc.code), status=500)
        arguments = call.arguments
        if call.operation == "GetState":
            state = self.ecc.get_state()
            return _xml(soap.response_state(state.code, state.message, state.state,
                                            state.transition, self.generation))
        if call.operation == "GetConfigIDs":
            return _xml(self._text(self.ecc.get_config_ids()))
        if call.operation == "Special":
            return _xml(self._text(self.ecc.special(arguments["command"], arguments["table"])))
        if call.operation == "ServerExit":
            return await self._server_exit(request)
        return await self._transition(call.operation, arguments)

    async def _transition(self, operation: str, arguments: dict[str, str]) -> web.Response:
        try:
            answer = await self.ecc.transition(operation, arguments["configID"],
                                               arguments["table"])
        except EmulatedCrash as exc:
            log.info("ECC server %s: %s", self.url, exc)
            await self._drop_everything()
            self._spawn(self.stop("crash"))
            # The connection is gone: whatever is returned here is never sent.
            return web.Response(status=500)
        log.info("ECC server %s: %s -> %d %s", self.url, operation, answer.code, answer.message)
        return _xml(self._text(answer))

    def _text(self, answer: Answer) -> bytes:
        return soap.response_text(answer.code, answer.message, answer.text, self.generation)

    async def _server_exit(self, request: web.Request) -> web.Response:
        """Answer first, then stop, as the real process answers and exits."""
        response = _xml(soap.response(0, "", self.generation))
        await response.prepare(request)
        await response.write_eof()
        self._spawn(self.stop("exit"))
        return response

    async def _control(self, request: web.Request) -> web.Response:
        """Inject or clear faults: ``POST /_emulator/fault`` with a JSON object."""
        try:
            data = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            return _json_error(f"the body is not JSON: {exc}")
        if not isinstance(data, dict):
            return _json_error("expected a JSON object like {\"action\": \"fail\", "
                               "\"operation\": \"Configure\", \"message\": \"...\"}")
        error = self._apply_fault(data)
        if error:
            return _json_error(error)
        return web.json_response({"ok": True, "faults": self.ecc.faults})

    def _apply_fault(self, data: dict) -> str | None:
        """Apply one control request; return what is wrong with it, or None."""
        action, message = data.get("action"), data.get("message")
        if action == "clear":
            self.ecc.clear_faults()
            return None
        if not isinstance(action, str) or action not in set(FaultKind):
            return (f"action must be one of {', '.join(FaultKind)}, clear; "
                    f"not {action!r}")
        try:
            operation = Operation(data.get("operation"))
        except (ValueError, TypeError):
            return (f"operation must be one of {', '.join(Operation)}; "
                    f"not {data.get('operation')!r}")
        if message is not None and not isinstance(message, str):
            return "message must be a string"
        if action == FaultKind.FAIL:
            self.ecc.fail_next(operation, *([message] if message else []))
        elif action == FaultKind.HANG:
            self.ecc.hang_next(operation)
        else:
            self.ecc.crash_next(operation)
        log.info("ECC server %s: next %s will %s", self.url, operation, action)
        return None


def _json_error(message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=400)


class EccEmulatorGroup:
    """Many emulated ECC servers in one process, on ports P, P+1, ... (or free ports).

    Use as ``async with EccEmulatorGroup(count=3) as group:``, then
    ``group.servers[0].url`` and ``group.servers[0].ecc``.

    Parameters
    ----------
    count
        How many servers.
    host
        The address to listen on.
    port
        The first port; 0 gives every server a free port (not consecutive).
    config_dir, transition_seconds, data, gsoap
        Passed to every :class:`EccServer`.

    Raises
    ------
    ValueError
        When count is below 1 or the ports do not fit in 1-65535.
    NotADirectoryError
        When ``config_dir`` is not a directory.
    """

    def __init__(self, count: int = 1, *, host: str = "127.0.0.1", port: int = 0,
                 config_dir: Path | str = EXAMPLE_CONFIG_DIR,
                 transition_seconds: TransitionSeconds = DEFAULT_TRANSITION_SECONDS,
                 data: DataSettings | None = None,
                 gsoap: soap.Generation | str = soap.Generation.UNQUALIFIED) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if port < 0 or (port and port + count - 1 > 65535):
            raise ValueError(f"ports {port}-{port + count - 1} are not all in 1-65535")
        self.servers = [EccServer(host, port + number if port else 0, config_dir,
                                  transition_seconds, data, gsoap) for number in range(count)]

    async def __aenter__(self) -> EccEmulatorGroup:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every server; if one cannot listen, stop the others and raise.

        Raises
        ------
        ListenError
            When a server cannot listen (the message names its address).
        """
        try:
            for server in self.servers:
                await server.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every server still serving, and every server's boards."""
        await asyncio.gather(*(server.stop() for server in self.servers if server.serving))
        await asyncio.gather(*(server.stop_boards() for server in self.servers))

    async def wait_stopped(self) -> None:
        """Return once every server has stopped (by ServerExit, crash or stop)."""
        await asyncio.gather(*(server.stopped.wait() for server in self.servers))
