"""One HTTP exchange per connection, as getEccSoapServer speaks it.

gSOAP without keep-alive closes every connection after its answer, so a client
pool only adds bookkeeping: each call here opens a connection, sends one POST,
collects the answer until the server closes (or its Content-Length is in) and
closes. The answer is read by the standard library's own HTTP parser
(``http.client.HTTPResponse``: status line, headers, a body by length, chunks or
until the close). A bare ``asyncio.Protocol`` carries the bytes, with less CPU per
call than an aiohttp session or h11 over streams (measured here: 0.30 ms against 0.36
for h11, connection included), which matters when the engine polls hundreds of servers
every second (bench/bench_engine.py (c)).
"""

from __future__ import annotations

import asyncio
import http.client
import io
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["MAX_ANSWER_BYTES", "AnswerLost", "BadAnswer", "BadUrl", "CannotConnect",
           "HttpAnswer", "post"]

#: Configure's answer holds every configuration file: megabytes at most. An answer
#: past this is not from an ECC server, and reading it would only fill memory.
MAX_ANSWER_BYTES = 64 * 2**20
#: Status line and headers: gSOAP writes a few hundred bytes.
MAX_HEAD_BYTES = 64 * 2**10
_END_OF_HEAD = b"\r\n\r\n"


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
        return _parse(await answered)
    finally:
        transport.close()


class _Exchange(asyncio.Protocol):
    """Send one request; collect its answer until the close or its Content-Length."""

    def __init__(self, request: bytes, answered: asyncio.Future) -> None:
        self._request = request
        self._answered = answered
        self._buffer = bytearray()
        self._expected: int | None = None  # head + Content-Length, once the head is in
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._expected is None and (end := self._buffer.find(_END_OF_HEAD)) >= 0:
            self._expected = _length_after(self._buffer, end + len(_END_OF_HEAD))
        limit = MAX_HEAD_BYTES if self._expected is None else MAX_ANSWER_BYTES
        if len(self._buffer) > limit:
            what = "head" if self._expected is None else "answer"
            self._finish(BadAnswer(f"{what} larger than {limit:,} bytes"))
        elif self._expected and len(self._buffer) >= self._expected:
            self._finish(bytes(self._buffer))  # whole: no need to wait for the close

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._buffer.find(_END_OF_HEAD) < 0:
            self._finish(AnswerLost(_os_reason(exc) if isinstance(exc, OSError)
                                    else str(exc) or type(exc).__name__))
        else:
            self._finish(bytes(self._buffer))  # a reset after the answer loses nothing

    def _finish(self, outcome: bytes | Exception) -> None:
        if not self._answered.done():
            if isinstance(outcome, Exception):
                self._answered.set_exception(outcome)
            else:
                self._answered.set_result(outcome)
        if self._transport is not None:
            self._transport.close()


def _length_after(buffer: bytearray, body_start: int) -> int:
    """Where the answer ends when it gives its Content-Length (0: read to the close)."""
    for line in bytes(buffer[:body_start]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return body_start + int(value.strip())
            except ValueError:
                return 0  # the parser will say what is wrong with it
    return 0


class _Received:
    """What ``http.client.HTTPResponse`` reads from: the bytes already received."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


def _parse(data: bytes) -> HttpAnswer:
    if not data:
        raise AnswerLost("closed before the answer")
    if data.find(_END_OF_HEAD) < 0:
        raise AnswerLost("closed amid the answer's head")
    response = http.client.HTTPResponse(_Received(data))
    try:
        response.begin()
        content = response.read()
    except http.client.BadStatusLine as exc:
        line = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        raise AnswerLost(f"not an HTTP answer: {line.strip()!r}") from None
    except http.client.IncompleteRead:
        raise AnswerLost("answer cut short" + (" or badly chunked" if response.chunked
                                               else "")) from None
    except (http.client.HTTPException, ValueError) as exc:
        raise AnswerLost(f"unreadable HTTP answer: {type(exc).__name__}: {exc}") from None
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        # Never asked for (no Accept-Encoding): reading it as XML would only mislead.
        raise BadAnswer(f"answer in {encoding!r} encoding, which was not asked for")
    return HttpAnswer(response.status, content)


def _os_reason(exc: OSError) -> str:
    # asyncio says "Connect call failed ('10.0.0.5', 46005)": the errno says why.
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    return " ".join((exc.strerror or str(exc)).split()) or type(exc).__name__
