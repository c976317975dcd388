"""One HTTP exchange per connection, as getEccSoapServer speaks it.

gSOAP without keep-alive closes every connection after its answer, so a client
pool only adds bookkeeping: each call here opens a connection, sends one POST,
reads one answer and closes. h11 does the HTTP (status line, headers, a body by
Content-Length, chunks or until the close); asyncio streams carry it. That costs
about a third of the CPU of an aiohttp session per call, which matters when the
engine polls hundreds of servers every second (bench/bench_engine.py (c)).
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
from requests.structures import CaseInsensitiveDict

__all__ = ["MAX_ANSWER_BYTES", "AnswerLost", "BadAnswer", "BadUrl", "CannotConnect",
           "HttpAnswer", "post"]

#: Configure's answer holds every configuration file: megabytes at most. An answer
#: past this is not from an ECC server, and reading it would only fill memory.
MAX_ANSWER_BYTES = 64 * 2**20
_READ_SIZE = 65536


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
    """An HTTP answer, with what zeep's SOAP binding reads of a ``requests.Response``."""

    status_code: int
    content: bytes
    headers: CaseInsensitiveDict
    encoding: str | None


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
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise CannotConnect(exc.errno, _os_reason(exc)) from None
    try:
        http = h11.Connection(h11.CLIENT)
        request = h11.Request(method="POST", target=target, headers=[
            ("Host", f"{host}:{port}"), *headers.items(),
            ("Content-Length", str(len(body))), ("Connection", "close")])
        writer.write(http.send(request) + http.send(h11.Data(data=body))
                     + http.send(h11.EndOfMessage()))
        return await _answer(http, reader)
    except h11.RemoteProtocolError as exc:
        raise AnswerLost(_h11_reason(exc)) from None
    except (ConnectionError, OSError) as exc:
        raise AnswerLost(_os_reason(exc)) from None
    finally:
        writer.close()


async def _answer(http: h11.Connection, reader: asyncio.StreamReader) -> HttpAnswer:
    response, chunks, size, received = None, [], 0, 0
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(_READ_SIZE)
            if not data and response is None:
                raise AnswerLost("closed amid the answer's head" if received
                                 else "closed before the answer")
            received += len(data)
            http.receive_data(data)  # b"": the server closed, which may end the body
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_ANSWER_BYTES:
                raise BadAnswer(f"answer larger than {MAX_ANSWER_BYTES >> 20} MiB")
            chunks.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
        elif isinstance(event, h11.ConnectionClosed):
            raise AnswerLost("closed before the answer")
        # h11.InformationalResponse (100 Continue): the real answer follows.
    headers = CaseInsensitiveDict(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers)
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        # Never asked for (no Accept-Encoding): reading it as XML would only mislead.
        raise BadAnswer(f"answer in {encoding!r} encoding, which was not asked for")
    return HttpAnswer(response.status_code, b"".join(chunks), headers,
                      _charset(headers.get("Content-Type", "")))


def _charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _os_reason(exc: OSError) -> str:
    # asyncio says "Connect call failed ('10.0.0.5', 46005)": the errno says why.
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    return " ".join((exc.strerror or str(exc)).split()) or type(exc).__name__


def _h11_reason(exc: h11.RemoteProtocolError) -> str:
    text = " ".join(str(exc).split())
    if "without sending complete message body" in text:
        return "answer cut short"
    # h11 shows the offending bytes as bytearray(b'...'): the quoted repr is enough.
    return re.sub(r"bytearray\((b(['\"]).*?\2)\)", lambda m: m.group(1)[1:], text) \
        or "not an HTTP answer"
