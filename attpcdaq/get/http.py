"""One HTTP exchange per connection, as getEccSoapServer speaks it.

gSOAP without keep-alive closes every connection after its answer, so a client
pool only adds bookkeeping: each call here opens a connection, sends one POST,
reads the answer as it comes and closes. httptools (the llhttp parser uvicorn
uses) reads it: status line, headers, a body by length, by chunks or until the
close. A bare ``asyncio.Protocol`` carries the bytes. Both for CPU: the engine
polls hundreds of servers every second (bench/bench_engine.py (c)), and a
system-wide step is two calls per server at once (bench (a)). Measured here per
GetState: aiohttp's session 0.88 ms of CPU, h11 over streams 0.36, the standard
library's ``http.client`` parser over this protocol 0.30 (its header parsing alone
42 us against httptools' 2).
"""

from __future__ import annotations

import asyncio
import os
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
    try:
        transport, _ = await loop.create_connection(
            lambda: _Exchange(request, answered), host, port)
    except OSError as exc:
        raise CannotConnect(exc.errno, _os_reason(exc)) from None
    try:
        return await answered
    finally:
        transport.close()


class _Exchange(asyncio.Protocol):
    """Send one request; read its answer with httptools as it comes, until it is whole
    or the server closes."""

    def __init__(self, request: bytes, answered: asyncio.Future) -> None:
        self._request = request
        self._answered = answered
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
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

    def connection_made(self, transport) -> None:
        self._transport = transport
        transport.write(self._request)

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

    # asyncio's ---------------------------------------------------------------------
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

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

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

    def _finish(self, outcome: HttpAnswer | Exception) -> None:
        if not self._answered.done():
            if isinstance(outcome, Exception):
                self._answered.set_exception(outcome)
            else:
                self._answered.set_result(outcome)
        if self._transport is not None:
            self._transport.close()


def _os_reason(exc: OSError) -> str:
    # asyncio says "Connect call failed ('10.0.0.5', 46005)": the errno says why.
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    return " ".join((exc.strerror or str(exc)).split()) or type(exc).__name__
