"""One HTTP exchange per connection, as getEccSoapServer speaks it.

gSOAP without keep-alive closes every connection after its answer, so a client
pool only adds bookkeeping: each call here opens a connection, sends one POST,
reads the answer as it comes and closes. httptools (the llhttp parser uvicorn
uses) reads it: status line, headers, a body by length, by chunks or until the
close. A non-blocking socket driven by the event loop's reader and writer callbacks
carries the bytes (:class:`_Call`). Both for CPU: the engine polls hundreds of
servers every second (bench/bench_engine.py (c)), and a system-wide step is two
calls per server at once (bench (a)). Measured here per GetState: aiohttp's session
0.88 ms of CPU, h11 over streams 0.36, the standard library's ``http.client`` parser
over an asyncio protocol 0.30 (its header parsing alone 42 us against httptools' 2),
httptools over an asyncio protocol 0.23, over the bare socket 0.19.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

__all__ = ["MAX_ANSWER_BYTES", "AnswerLost", "BadAnswer", "BadUrl", "CannotConnect",
           "HttpAnswer", "post"]

#: Configure's answer holds every configuration file: megabytes at most. An answer
#: past this is not from an ECC server, and reading it would only fill memory.
MAX_ANSWER_BYTES = 64 * 2**20
#: Status line and headers: gSOAP writes a few hundred bytes.
MAX_HEAD_BYTES = 64 * 2**10


class BadUrl(ValueError):
    """The address is not ``http://HOST:PORT/...``."""


class CannotConnect(OSError):
    """No connection could be made (refused, unreachable, unknown host)."""


class AnswerLost(ConnectionError):
    """The connection was made but no whole HTTP answer came back on it."""


class BadAnswer(ValueError):
    """A whole HTTP answer came, but not one an ECC server gives (too big, encoded)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP answer: its status and body."""

    status_code: int
    content: bytes


def split_url(url: str) -> tuple[str, int, str]:
    """Host, port and request target of an ``http://`` URL.

    Raises
    ------
    BadUrl
        Naming what is wrong with it.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadUrl(f"invalid URL: {exc}") from None
    if not parts.scheme and not parts.netloc:
        raise BadUrl("invalid URL")
    if parts.scheme.lower() != "http":
        raise BadUrl("not an http:// URL")
    if not parts.hostname:
        raise BadUrl("invalid URL: no host")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port or 80, target


async def post(url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
    """POST ``body`` to ``url`` on a connection of its own and return the answer.

    The caller bounds the time (``asyncio.timeout``); cancelling closes the connection.

    Raises
    ------
    BadUrl, CannotConnect, AnswerLost, BadAnswer
        As their names say; each message is one line, with the cause.
    """
    host, port, target = split_url(url)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = "".join(f"{name}: {value}\r\n" for name, value in (
        ("Host", authority), *headers.items(), ("Content-Length", str(len(body))),
        ("Connection", "close")))
    request = f"POST {target} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body
    loop = asyncio.get_running_loop()
    answered = loop.create_future()
    exchange = _Exchange(answered)
    addresses = _numeric_address(host, port) or await _resolve(loop, host, port)
    call = _Call(loop, addresses, request, exchange)
    try:
        return await answered
    finally:
        call.close()


def _numeric_address(host: str, port: int) -> list[tuple[int, tuple]] | None:
    """The address of a host written as digits (as the ECC servers' are): no lookup."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, (host, port))]
    return None


async def _resolve(loop: asyncio.AbstractEventLoop, host: str,
                   port: int) -> list[tuple[int, tuple]]:
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CannotConnect(exc.errno, _os_reason(exc)) from None
    return [(family, address) for family, _, _, _, address in infos]


class _Call:
    """One request on a socket of its own, driven by the event loop's reader and writer
    callbacks rather than a transport.

    For the CPU, and so that a request leaves as soon as it is made: the connect is
    tried and the request sent in the same step (on a LAN or loopback the handshake is
    over by then), so a hundred servers' requests leave one by one instead of all
    after the hundredth connect (bench/bench_engine.py (a)). Where the handshake is
    not over, the send waits for the socket to be writable. Each address a name
    resolves to is tried in turn.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, tuple]],
                 request: bytes, exchange: _Exchange) -> None:
        self._loop = loop
        self._addresses = list(addresses)
        self._unsent = memoryview(request)
        self._exchange = exchange
        self._sock: socket.socket | None = None
        self._connected = False
        self._writing = self._reading = False
        self._connect_failure: OSError | None = None
        exchange.close = self.close
        self._connect_next()

    def _connect_next(self) -> None:
        while self._addresses:
            family, address = self._addresses.pop(0)
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:  # out of file descriptors, say
                self._connect_failure = exc
                continue
            sock.setblocking(False)
            try:
                error = sock.connect_ex(address)
            except OSError as exc:
                sock.close()
                self._connect_failure = exc
                continue
            if error in (0, errno.EINPROGRESS):
                self._sock = sock
                self._send()
                return
            sock.close()
            self._connect_failure = OSError(error, os.strerror(error))
        failure = self._connect_failure or OSError(errno.EHOSTUNREACH, "no address")
        self._exchange.fail(CannotConnect(failure.errno, _os_reason(failure)))

    def _send(self) -> None:
        if not self._connected:
            error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:  # refused, unreachable: the next address, if any
                self._drop_socket()
                self._connect_failure = OSError(error, os.strerror(error))
                self._connect_next()
                return
        try:
            sent = self._sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            sent = 0  # still connecting, or the server is not reading yet
        except OSError as exc:
            if not self._connected and exc.errno == errno.ENOTCONN:
                sent = 0  # still connecting, as some systems say it
            elif not self._connected:  # nothing went: the next address, if any
                self._drop_socket()
                self._connect_failure = exc
                self._connect_next()
                return
            else:
                self._exchange.connection_lost(exc)
                return
        if sent and not self._connected:
            self._connected = True
            self._loop.add_reader(self._sock.fileno(), self._receive)
            self._reading = True
        self._unsent = self._unsent[sent:]
        if self._unsent and not self._writing:
            self._loop.add_writer(self._sock.fileno(), self._send)
            self._writing = True
        elif not self._unsent and self._writing:
            self._loop.remove_writer(self._sock.fileno())
            self._writing = False

    def _receive(self) -> None:
        try:
            data = self._sock.recv(_RECEIVE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._exchange.connection_lost(exc)
            return
        if data:
            self._exchange.data_received(data)
        else:
            self._exchange.connection_lost(None)

    def _drop_socket(self) -> None:
        if self._sock is None:
            return
        if self._writing:
            self._loop.remove_writer(self._sock.fileno())
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
        self._writing = self._reading = False
        self._sock.close()
        self._sock = None

    def close(self) -> None:
        """Stop reading and writing, and close the socket (again is harmless)."""
        self._addresses = []
        self._drop_socket()


#: What one read takes: Configure's answer (every configuration file) comes in a few.
_RECEIVE_BYTES = 256 * 2**10


class _Exchange:
    """Read one answer with httptools as it comes, until it is whole or the server
    closes; settle ``answered`` with it or with what went wrong."""

    def __init__(self, answered: asyncio.Future) -> None:
        self._answered = answered
        self._parser = httptools.HttpResponseParser(self)
        self.close = lambda: None  # the connection's, once there is one
        self._first_bytes = b""  # the start of what came, to say what it was
        self._head_bytes = 0
        self._new_message()

    def _new_message(self) -> None:
        self._headers_done = False
        self._header_bytes = 0
        self._framing: bytes | None = None  # "length" or "chunked"; None: until the close
        self._encoding = b"identity"
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._refused: BadAnswer | None = None  # set by a callback: parsing stops there

    # httptools' callbacks (an exception raised in one would reach us disguised) --------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEAD_BYTES:
            self._refused = BadAnswer(f"head larger than {MAX_HEAD_BYTES:,} bytes")
        name = name.lower()
        if name == b"content-length":
            self._framing = self._framing or b"length"
        elif name == b"transfer-encoding":
            self._framing = b"chunked"
        elif name == b"content-encoding":
            self._encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._encoding != b"identity":
            # Never asked for (no Accept-Encoding): reading it as XML would only mislead.
            self._refused = BadAnswer(f"answer in {self._encoding.decode('latin-1')!r} "
                                      "encoding, which was not asked for")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_ANSWER_BYTES:
            self._refused = BadAnswer(f"answer larger than {MAX_ANSWER_BYTES:,} bytes")
        elif self._refused is None:
            self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if self._refused is not None:
            return
        if 100 <= status < 200:
            self._new_message()  # "100 Continue" and the like: the answer follows
        else:
            self._finish(HttpAnswer(status, b"".join(self._body)))

    # the connection's ---------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._answered.done():
            return  # whatever follows a whole answer is not read
        if len(self._first_bytes) < 80:
            self._first_bytes += data[:80]
        if not self._headers_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._headers_done:
                reason = self._cut_short()
            elif not self._first_bytes.startswith(b"HTTP/"):
                reason = f"not an HTTP answer: {self._first_line()!r}"
            else:
                reason = f"unreadable HTTP answer: {exc}"
            self._finish(AnswerLost(reason))
        if self._refused is not None:
            self._finish(self._refused)
        elif not self._headers_done and self._head_bytes > MAX_HEAD_BYTES:
            self._finish(BadAnswer(f"head larger than {MAX_HEAD_BYTES:,} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answered.done():
            return
        if self._headers_done and self._framing is None:
            # No length, no chunks (HTTP/1.0 style): the close ends the body.
            self._finish(HttpAnswer(self._parser.get_status_code(), b"".join(self._body)))
        elif self._headers_done:
            self._finish(AnswerLost(self._cut_short()))
        elif exc is not None and not self._first_bytes:
            self._finish(AnswerLost(_os_reason(exc) if isinstance(exc, OSError)
                                    else str(exc) or type(exc).__name__))
        elif not self._first_bytes:
            self._finish(AnswerLost("closed before the answer"))
        else:
            self._finish(AnswerLost("closed amid the answer's head"))

    def _cut_short(self) -> str:
        return "answer cut short" + (" or badly chunked" if self._framing == b"chunked" else "")

    def _first_line(self) -> str:
        return self._first_bytes.split(b"\r\n", 1)[0].decode("latin-1").strip()

    def fail(self, failure: Exception) -> None:
        """No answer can come: ``failure`` says why."""
        self._finish(failure)

    def _finish(self, outcome: HttpAnswer | Exception) -> None:
        if not self._answered.done():
            if isinstance(outcome, Exception):
                self._answered.set_exception(outcome)
            else:
                self._answered.set_result(outcome)
        self.close()


def _os_reason(exc: OSError) -> str:
    # asyncio says "Connect call failed ('10.0.0.5', 46005)": the errno says why.
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    return " ".join((exc.strerror or str(exc)).split()) or type(exc).__name__
