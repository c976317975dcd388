"""HTTP as getEccSoapServer's gSOAP speaks it: one request per connection, read with
httptools, one answer with gSOAP's headers, then the connection closed.

A bare ``asyncio.Protocol`` rather than a web framework: see :mod:`.server`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

import httptools

from . import soap

__all__ = ["MAX_REQUEST_BYTES", "Connection", "Reply", "json_reply", "xml_reply"]

#: A request body past this is refused (413): no ECC request comes near it.
MAX_REQUEST_BYTES = 16 * 2**20
_REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed",
            413: "Request Entity Too Large", 500: "Internal Server Error"}


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to send: status, body and its type."""

    status: int
    body: bytes
    content_type: str = "text/xml; charset=utf-8"


def xml_reply(body: bytes, status: int = 200) -> Reply:
    """An XML answer (SOAP, or a SOAP Fault with its status)."""
    return Reply(status, body)


def json_reply(data: dict, status: int = 200) -> Reply:
    """A JSON answer (the control endpoint's)."""
    return Reply(status, json.dumps(data).encode(), "application/json; charset=utf-8")


def _wire(answer: Reply) -> bytes:
    """The answer as gSOAP writes it, headers in its order."""
    return (f"HTTP/1.1 {answer.status} {_REASONS[answer.status]}\r\nServer: gSOAP/2.8\r\n"
            f"X-Frame-Options: SAMEORIGIN\r\nContent-Type: {answer.content_type}\r\n"
            f"Content-Length: {len(answer.body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1") + answer.body


class Connection(asyncio.Protocol):
    """One client's connection: one request, read by httptools, one answer, closed.

    It adds itself to ``connections`` while open, and hands the whole request to
    ``serve(connection, method, path, body)``, which answers with :meth:`answer` or
    :meth:`drop`.
    """

    def __init__(self, connections: set[Connection],
                 serve: Callable[[Connection, bytes, bytes, bytes], None]) -> None:
        self._connections = connections
        self._serve = serve
        self._parser = httptools.HttpRequestParser(self)
        self._path = b""
        self._body: list[bytes] = []
        self._size = 0
        self._read = False  # the whole request came: nothing after it is read
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # A transition goes on when its client goes away, as on the real server.
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._read:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()  # not HTTP: gSOAP closes without a word

    # httptools' callbacks
    def on_url(self, url: bytes) -> None:
        self._path += url

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= MAX_REQUEST_BYTES:
            self._body.append(body)
        else:  # read to its end, kept no longer, so that the refusal is read, not reset
            self._body.clear()

    def on_message_complete(self) -> None:
        self._read = True
        if self._size > MAX_REQUEST_BYTES:
            self.answer(xml_reply(soap.fault("request too large"), 413))
            return
        self._serve(self, self._parser.get_method(), self._path, b"".join(self._body))

    def answer(self, answer: Reply) -> None:
        """Send ``answer`` and close, unless the client has gone."""
        if not self.transport.is_closing():
            self.transport.write(_wire(answer))
            self.transport.close()

    def drop(self) -> None:
        """Close at once, unanswered, as a killed process's connections end."""
        self.transport.abort()
