"""Emulated ECC servers on real sockets: SOAP over HTTP, many per process.

Each :class:`EccServer` listens on its own port, so one can crash or exit while the
others serve on. HTTP is spoken as getEccSoapServer's gSOAP speaks it (seen on the
wire of the gSOAP server of ``tests/gsoap``): one request per connection, every
answer with gSOAP's headers and ``Connection: close``; a GET is answered 405 with
a SOAP Fault; what is not HTTP is closed unanswered. Any ``POST`` is a SOAP request
(getEccSoapServer ignores the path and the SOAPAction), except the control
endpoint ``POST /_emulator/fault``, which takes JSON such as
``{"action": "fail", "operation": "Configure", "message": "no clock"}`` (actions:
fail, hang, crash, clear) and answers ``{"ok": true, "faults": {...}}``.

The HTTP is a bare ``asyncio.Protocol`` reading requests with httptools, not a web
framework: the real servers are C++ processes of their own, one per board, and a
hundred of them served by one Python process must not take a framework's
milliseconds each, or the emulator, not the run control, sets the pace of a
system-wide step (bench/bench_engine.py (a)).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Coroutine
from pathlib import Path

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
from .http import Connection, Reply, json_reply, xml_reply

__all__ = ["CONTROL_PATH", "EXAMPLE_CONFIG_DIR", "EccEmulatorGroup", "EccServer", "ListenError"]

log = logging.getLogger(__name__)

#: The configuration directory shipped with the package (CoBo 0-3, the MuTAnT).
EXAMPLE_CONFIG_DIR = Path(__file__).with_name("example_configs")
#: Where tests and people inject faults over HTTP.
CONTROL_PATH = "/_emulator/fault"
# A stopping server gives requests in progress this long before cancelling them.
_SHUTDOWN_SECONDS = 1.0


class ListenError(OSError):
    """A server could not listen on its address (port in use, unknown host...)."""


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket for ``host:port``, ready to listen on."""
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
        self._listener: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._handlers: set[asyncio.Task] = set()  # requests being served
        self._stop_task: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()  # what a request started, outliving it

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
        return self._listener is not None

    async def start(self) -> None:
        """Listen and serve.

        Raises
        ------
        ListenError
            When the address cannot be listened on.
        """
        sock = _listen(self.host, self.port)
        try:
            listener = await asyncio.get_running_loop().create_server(
                lambda: Connection(self._connections, self._serve_later), sock=sock, backlog=128)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._listener, self._stop_task, self.stop_reason = listener, None, None
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
        self._close_listener()
        self.ecc.kill()
        # Requests in progress get a moment to answer, then are cancelled.
        handlers = set(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=_SHUTDOWN_SECONDS)
            for handler in pending:
                handler.cancel()
            if pending:
                await asyncio.wait(pending)
        for connection in list(self._connections):
            connection.transport.close()
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

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()  # the listening socket at once
            self._listener = None

    async def _drop_everything(self) -> None:
        if self._listener is None:
            return
        self._close_listener()
        for connection in list(self._connections):
            connection.drop()
        self.ecc.kill()

    def _spawn(self, coroutine: Coroutine) -> None:
        """Run ``coroutine`` outside the request: stopping waits for requests to end."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _serve_later(self, connection: Connection, method: bytes, path: bytes,
                     body: bytes) -> None:
        """Serve a whole request in a task of its own (a transition takes its time)."""
        if not self.serving:  # it came in as the server stopped: a dead process answers nothing
            connection.drop()
            return
        task = asyncio.create_task(self._serve(connection, method, path, body))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, connection: Connection, method: bytes, path: bytes,
                     body: bytes) -> None:
        answer = None
        try:
            if method != b"POST":
                answer = xml_reply(soap.fault(f"HTTP {method.decode('latin-1')} method not "
                                         "implemented"), 405)
            elif path.split(b"?", 1)[0] == CONTROL_PATH.encode():
                answer = self._control(body)
            else:
                answer = await self._soap(body)
        except Exception:  # the emulator's own bug: answered as gSOAP answers its own
            log.exception("ECC server %s: error serving a request", self.url)
            answer = xml_reply(soap.fault("internal error", "SOAP-ENV:Server"), 500)
        finally:
            # Cancelled (the server stopping) or crashed: closed without an answer.
            if answer is None:
                connection.drop()
            else:
                connection.answer(answer)

    async def _soap(self, body: bytes) -> Reply | None:
        """Serve one SOAP request, whatever its path; None: drop the connection."""
        try:
            call = soap.parse_request(body, self.generation)
        except soap.SoapError as exc:
            log.info("ECC server %s: SOAP fault: %s", self.url, exc)
            return xml_reply(soap.fault(str(exc), exc.code), status=500)
        arguments = call.arguments
        if call.operation == "GetState":
            state = self.ecc.get_state()
            return xml_reply(soap.response_state(state.code, state.message, state.state,
                                            state.transition, self.generation))
        if call.operation == "GetConfigIDs":
            return xml_reply(self._text(self.ecc.get_config_ids()))
        if call.operation == "Special":
            return xml_reply(self._text(self.ecc.special(arguments["command"], arguments["table"])))
        if call.operation == "ServerExit":
            return self._server_exit()
        return await self._transition(call.operation, arguments)

    async def _transition(self, operation: str, arguments: dict[str, str]) -> Reply | None:
        try:
            answer = await self.ecc.transition(operation, arguments["configID"],
                                               arguments["table"])
        except EmulatedCrash as exc:
            log.info("ECC server %s: %s", self.url, exc)
            await self._drop_everything()
            self._spawn(self.stop("crash"))
            return None  # the connection is gone with the process
        log.info("ECC server %s: %s -> %d %s", self.url, operation, answer.code, answer.message)
        return xml_reply(self._text(answer))

    def _text(self, answer: Answer) -> bytes:
        return soap.response_text(answer.code, answer.message, answer.text, self.generation)

    def _server_exit(self) -> Reply:
        """Answer first, then stop, as the real process answers and exits."""
        self._spawn(self.stop("exit"))  # runs once this request's answer is sent
        return xml_reply(soap.response(0, "", self.generation))

    def _control(self, body: bytes) -> Reply:
        """Inject or clear faults: ``POST /_emulator/fault`` with a JSON object."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _json_error(f"the body is not JSON: {exc}")
        if not isinstance(data, dict):
            return _json_error("expected a JSON object like {\"action\": \"fail\", "
                               "\"operation\": \"Configure\", \"message\": \"...\"}")
        error = self._apply_fault(data)
        if error:
            return _json_error(error)
        return json_reply({"ok": True, "faults": self.ecc.faults})

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


def _json_error(message: str) -> Reply:
    return json_reply({"ok": False, "error": message}, 400)


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
