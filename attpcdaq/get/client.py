"""The async ECC client: every SOAP operation of getEccSoapServer, typed and timed out.

Built on zeep with the project's own WSDL (``ecc.wsdl``, parsed once per process).
Every call is bounded by a timeout (one for GetState and the quick calls, a longer
one for transitions, which block on the server until done) and every failure
becomes an :class:`~attpcdaq.get.exceptions.EccError` naming the server.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import zeep
import zeep.exceptions
from lxml import etree
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from .exceptions import (
    BUSY_MESSAGE,
    EccBusy,
    EccHttpError,
    EccProtocolError,
    EccRefused,
    EccSoapFault,
    EccTimeout,
    EccUnreachable,
)
from .states import Operation, State, TransitionCode
from .xmldocs import ConfigId, DataLinkSet, parse_config_list

__all__ = [
    "DEFAULT_STATE_TIMEOUT",
    "DEFAULT_TRANSITION_TIMEOUT",
    "EccClient",
    "StateReply",
    "TextReply",
]

WSDL_PATH = Path(__file__).with_name("ecc.wsdl")
#: GetState, GetConfigIDs, Special and ServerExit answer at once on a healthy server.
DEFAULT_STATE_TIMEOUT = 5.0
#: Operators give a transition about 120 s before calling it hung.
DEFAULT_TRANSITION_TIMEOUT = 120.0
_BINDING = "{urn:ecc}ecc"


@dataclass(frozen=True, slots=True)
class StateReply:
    """GetState's answer: the state, the transition running (if any) and the message."""

    state: State
    transition: TransitionCode
    error_code: int = 0
    error_message: str = ""

    @property
    def transitioning(self) -> bool:
        """True while a transition runs on the server."""
        return self.transition != TransitionCode.NONE


@dataclass(frozen=True, slots=True)
class TextReply:
    """The answer of a transition, GetConfigIDs or Special."""

    error_code: int
    error_message: str
    text: str


_FAULT = "{http://schemas.xmlsoap.org/soap/envelope/}Fault"


class _EccTransport(AsyncTransport):
    """zeep's transport, but an error status without a SOAP Fault is an HTTP error.

    zeep reads any XML body of a non-200 answer as a fault ("Unknown fault
    occured"), which would hide a proxy's or a wrong server's 404 behind a
    misleading SOAP fault.
    """

    async def post(self, address, message, headers):
        response = await super().post(address, message, headers)
        if response.status_code != 200 and not _has_fault(response.content):
            raise zeep.exceptions.TransportError(status_code=response.status_code)
        return response


def _has_fault(body: bytes) -> bool:
    try:
        return etree.fromstring(body, _SAFE).find(f".//{_FAULT}") is not None
    except etree.XMLSyntaxError:
        return False


_SAFE = etree.XMLParser(resolve_entities=False, no_network=True)


@functools.cache
def _wsdl() -> zeep.wsdl.Document:
    """The parsed WSDL, shared by every client: parsing it takes milliseconds."""
    return zeep.wsdl.Document(str(WSDL_PATH), zeep.Transport())


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # ECC servers speak plain HTTP; one context spares each client building its own.
    return ssl.create_default_context()


@functools.cache
def _wsdl_http() -> httpx.Client:
    # zeep's AsyncTransport wants a sync client for fetching WSDLs; ours is local.
    return httpx.Client(verify=_ssl_context())


class EccClient:
    """An async client of one ECC server.

    Parameters
    ----------
    url
        The server's address, ``http://HOST:PORT/``.
    state_timeout
        Seconds allowed for GetState, GetConfigIDs, Special and ServerExit.
    transition_timeout
        Seconds allowed for a transition, which the server answers only when done.

    Use as ``async with EccClient(url) as ecc: await ecc.get_state()``, or call
    :meth:`aclose` when done.
    """

    def __init__(self, url: str, *, state_timeout: float = DEFAULT_STATE_TIMEOUT,
                 transition_timeout: float = DEFAULT_TRANSITION_TIMEOUT) -> None:
        self.url = url
        self.state_timeout = state_timeout
        self.transition_timeout = transition_timeout
        # The asyncio timeout bounds each call; httpx's is only a backstop.
        backstop = max(state_timeout, transition_timeout) + 5
        self._http = httpx.AsyncClient(timeout=backstop, verify=_ssl_context())
        transport = _EccTransport(client=self._http, wsdl_client=_wsdl_http())
        settings = zeep.Settings(strict=False, xml_huge_tree=False)
        self._zeep = zeep.AsyncClient(_wsdl(), transport=transport, settings=settings)
        # AsyncClient.create_service returns a sync proxy (a zeep quirk): build the async one.
        self._service = AsyncServiceProxy(self._zeep, _wsdl().bindings[_BINDING], address=url)

    async def __aenter__(self) -> EccClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"EccClient({self.url!r})"

    async def _call(self, operation: str, timeout: float, **arguments: str) -> Any:
        """Call one SOAP operation and map every failure to an :class:`EccError`."""
        try:
            async with asyncio.timeout(timeout):
                return await getattr(self._service, operation)(**arguments)
        except TimeoutError:
            raise EccTimeout(self.url, f"{operation}: no answer within {timeout:g} s") from None
        except zeep.exceptions.Fault as exc:
            raise EccSoapFault(self.url, f"{operation}: SOAP fault: {exc.message}") from None
        except zeep.exceptions.TransportError as exc:
            raise EccHttpError(self.url, exc.status_code,
                               f"{operation}: HTTP status {exc.status_code}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise EccUnreachable(self.url, f"{operation}: cannot connect: "
                                 f"{_reason(exc)}") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise EccUnreachable(self.url, f"{operation}: connection closed without an "
                                 f"answer: {_reason(exc)}") from None
        except httpx.TimeoutException:
            raise EccTimeout(self.url, f"{operation}: no answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise EccUnreachable(self.url, f"{operation}: {_reason(exc)}") from None
        except (zeep.exceptions.Error, etree.LxmlError, ValueError, TypeError,
                AttributeError, IndexError, KeyError) as exc:
            raise EccProtocolError(self.url, f"{operation}: malformed answer: "
                                   f"{_reason(exc)}") from None

    def _fields(self, operation: str, answer: Any, *names: str) -> dict[str, Any]:
        """Pull required fields out of an answer, refusing one that lacks any."""
        if answer is None:
            raise EccProtocolError(self.url, f"{operation}: empty answer")
        values = {}
        for name in ("ErrorCode", "ErrorMessage", *names):
            value = getattr(answer, name, None)
            if value is None and name in ("ErrorMessage", "Text"):
                value = ""  # gSOAP leaves an empty string element out
            if value is None:
                raise EccProtocolError(self.url, f"{operation}: answer lacks {name}")
            values[name] = value
        return values

    async def get_state(self) -> StateReply:
        """Ask the server's state and the transition running, if any.

        Raises
        ------
        EccError
            When the server cannot be reached, times out or answers badly.
        """
        answer = await self._call("GetState", self.state_timeout)
        fields = self._fields("GetState", answer, "State", "Transition")
        try:
            state, transition = State(fields["State"]), TransitionCode(fields["Transition"])
        except ValueError:
            raise EccProtocolError(self.url, f"GetState: unknown State {fields['State']!r} or "
                                   f"Transition {fields['Transition']!r}") from None
        return StateReply(state, transition, fields["ErrorCode"], fields["ErrorMessage"])

    async def _text(self, operation: str, timeout: float, **arguments: str) -> TextReply:
        answer = await self._call(operation, timeout, **arguments)
        fields = self._fields(operation, answer, "Text")
        reply = TextReply(fields["ErrorCode"], fields["ErrorMessage"], fields["Text"])
        if reply.error_code != 0:
            kind = EccBusy if BUSY_MESSAGE.lower() in reply.error_message.lower() else EccRefused
            raise kind(self.url, operation, reply.error_code, reply.error_message)
        return reply

    async def get_config_ids(self) -> list[ConfigId]:
        """List every configuration set the server offers.

        Raises
        ------
        EccError
            On any failure, including an unreadable config list.
        """
        reply = await self._text("GetConfigIDs", self.state_timeout)
        try:
            return parse_config_list(reply.text)
        except ValueError as exc:
            raise EccProtocolError(self.url, f"GetConfigIDs: {exc}") from None

    async def transition(self, operation: Operation | str, config: ConfigId | None,
                         links: DataLinkSet | None) -> TextReply:
        """Run one transition and wait until the server says it is done.

        Parameters
        ----------
        operation
            Describe, Prepare, Configure, Start, Stop, Pause, Resume, Breakup or Undo.
        config
            The configuration set, sent as ``configID`` (empty when None: the
            steps after Configure do not read it).
        links
            Where the boards send data, sent as ``table`` (empty when None).

        Raises
        ------
        EccBusy
            When another transition is running on the server.
        EccRefused
            When the server refused or the transition failed (ErrorCode != 0).
        EccError
            When the server cannot be reached, times out or answers badly.
        """
        op = Operation(operation)
        return await self._text(str(op), self.transition_timeout,
                                configID=config.as_xml() if config else "",
                                table=links.as_xml() if links else "")

    async def special(self, command: str, table: str = "") -> TextReply:
        """Send a ``Special`` command (server-specific; the emulator echoes it)."""
        return await self._text("Special", self.state_timeout, command=command, table=table)

    async def server_exit(self) -> None:
        """Ask the server process to exit."""
        answer = await self._call("ServerExit", self.state_timeout)
        fields = self._fields("ServerExit", answer)
        if fields["ErrorCode"] != 0:
            raise EccRefused(self.url, "ServerExit", fields["ErrorCode"], fields["ErrorMessage"])


def _reason(exc: BaseException) -> str:
    """A short reason for an exception, never empty."""
    return str(exc) or type(exc).__name__

