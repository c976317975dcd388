"""The async ECC client: every SOAP operation of getEccSoapServer, typed and timed out.

Built on zeep with the project's own WSDL (``ecc.wsdl``, parsed once per process):
zeep builds and reads the SOAP; :mod:`.http` carries it, one connection per call as
getEccSoapServer closes each after its answer.

Two generations of server are in the field and read requests differently: gSOAP up
to 2.8.29 qualifies the operation's children, from 2.8.30 it leaves them unqualified
and silently drops a prefixed child (``<ns0:configID>`` arrives as ""). So every
request is rewritten to the one form both read, the default namespace with
unprefixed children (``<Describe xmlns="urn:ecc"><configID>...``), and answers are
read whether their children are qualified or not (:class:`_EveryGeneration`).

A transition answered ErrorCode 0 is no proof: the real server ignores a transition
its state does not allow and answers 0. :meth:`EccClient.run_step` confirms every
step with GetState and raises :class:`~attpcdaq.get.exceptions.EccIgnored` when
the board did not move.
Every call is bounded by a timeout (one for GetState and the quick calls, a longer
one for transitions, which block on the server until done) and every failure
becomes an :class:`~attpcdaq.get.exceptions.EccError` naming the server.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zeep
import zeep.exceptions
from lxml import etree
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport
from zeep.utils import get_version
from zeep.wsdl.utils import etree_to_string

from . import http
from .exceptions import (
    BUSY_MESSAGE,
    EccAnswerLost,
    EccBusy,
    EccHttpError,
    EccIgnored,
    EccProtocolError,
    EccRefused,
    EccSoapFault,
    EccTimeout,
    EccUnreachable,
    PlanError,
)
from .states import Operation, State, Step, TransitionCode, step_for
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
_SOAP_BODY = "{http://schemas.xmlsoap.org/soap/envelope/}Body"
_ECC = "urn:ecc"


class _EveryGeneration(zeep.Plugin):
    """Speak to servers of every gSOAP generation (see the module docstring).

    Out: the operation element is rebuilt in the default namespace, its children
    unprefixed (in ``urn:ecc`` by inheritance, which the old servers want, with no
    prefix, which the new ones need). In: the answer's children are put in
    ``urn:ecc`` when they came unqualified, as the WSDL (qualified) expects.
    """

    def egress(self, envelope, http_headers, operation, binding_options):
        body = envelope.find(_SOAP_BODY)
        if body is not None and len(body):
            old = body[0]
            new = etree.Element(old.tag, nsmap={None: _ECC})
            for child in old:
                etree.SubElement(new, f"{{{_ECC}}}{etree.QName(child).localname}").text = \
                    child.text or ""
            body.replace(old, new)
        return envelope, http_headers

    def ingress(self, envelope, http_headers, operation):
        body = envelope.find(_SOAP_BODY)
        for answer in body if body is not None else ():
            if not isinstance(answer.tag, str) or etree.QName(answer).namespace != _ECC:
                continue  # a Fault's children are unqualified by SOAP's own rule
            for child in answer:
                if isinstance(child.tag, str) and etree.QName(child).namespace is None:
                    child.tag = f"{{{_ECC}}}{child.tag}"
        return envelope, http_headers


class _EccTransport(AsyncTransport):
    """zeep's async transport over :func:`.http.post` instead of httpx.

    Nothing to open or pool: each call has its connection (a transition holds its
    own until the server is done, up to minutes, while GetState goes on over
    another). An error status without a SOAP Fault is an HTTP error: zeep reads any
    XML body of a non-200 answer as a fault ("Unknown fault occured"), which would
    hide a proxy's or a wrong server's 404 behind a misleading SOAP fault.
    """

    _close_session = False  # read by zeep's Transport.__del__

    def __init__(self) -> None:
        # Not AsyncTransport.__init__: it builds httpx clients that would go unused.
        self.cache = None
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True

    def _load_remote_data(self, url):
        # Only a SOAP answer could ask for a remote document: never fetch one.
        raise zeep.exceptions.Error(f"refusing to fetch {url}")

    async def post(self, address, message, headers):
        if self._closed:
            raise RuntimeError("the ECC client has been closed")
        reply = await http.post(address, message, {"User-Agent": _USER_AGENT, **headers})
        if reply.status_code != 200 and not _has_fault(reply.content):
            raise zeep.exceptions.TransportError(status_code=reply.status_code)
        return reply

    async def post_xml(self, address, envelope, headers):
        return await self.post(address, etree_to_string(envelope), headers)

    async def get(self, address, params, headers):
        raise NotImplementedError("ECC servers speak SOAP over HTTP POST only")


_USER_AGENT = f"Zeep/{get_version()} (www.python-zeep.org)"


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
        self._transport = _EccTransport()
        # Configure's answer holds every configuration file's text: it can pass lxml's
        # default limit on one text node, so huge trees are allowed (entities never are).
        settings = zeep.Settings(strict=False, xml_huge_tree=True)
        self._zeep = zeep.AsyncClient(_wsdl(), transport=self._transport, settings=settings,
                                      plugins=[_EveryGeneration()])
        # AsyncClient.create_service returns a sync proxy (a zeep quirk): build the async one.
        self._service = AsyncServiceProxy(self._zeep, _wsdl().bindings[_BINDING], address=url)

    async def __aenter__(self) -> EccClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._transport.aclose()

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
        except http.BadUrl as exc:
            raise EccUnreachable(self.url, f"{operation}: {exc}") from None
        except http.CannotConnect as exc:
            raise EccUnreachable(self.url, f"{operation}: cannot connect: "
                                 f"{exc.strerror}") from None
        except http.AnswerLost as exc:
            # Reset, closed before or amid the answer, or an answer that is not HTTP.
            raise EccAnswerLost(self.url, f"{operation}: connection closed without an "
                                f"answer: {exc}") from None
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

    async def run_step(self, step: Step, config: ConfigId | None,
                       links: DataLinkSet | None) -> tuple[TextReply, StateReply]:
        """Run one step and confirm with GetState that the board moved.

        An answer lost on the way (the connection closed before it came) is not
        the end: GetState is polled until no transition runs, then the state says
        what happened.

        Returns
        -------
        The transition's answer (its text: Describe's senders, Configure's links and
        configuration files) and the GetState that confirmed it.

        Raises
        ------
        EccIgnored
            When the server answered 0 but the board is still in the step's source
            state (not allowed from the state it was really in), or is elsewhere.
        EccError
            When the transition failed, was refused, timed out or the server could
            not be reached (see :meth:`transition`).
        """
        try:
            reply = await self.transition(step.operation, config, links)
        except EccAnswerLost:
            state = await self._settled_state(step)
            if state.state != step.target:
                raise
            return TextReply(0, "", ""), state
        state = await self.get_state()
        if state.transitioning:  # another client's transition slipped in between
            state = await self._settled_state(step)
        if state.state != step.target:
            raise EccIgnored(self.url, str(step.operation), state.state, step.target)
        return reply, state

    async def run_operation(self, operation: Operation | str, config: ConfigId | None,
                            links: DataLinkSet | None) -> tuple[TextReply, StateReply]:
        """Run ``operation`` from whatever state the board is in, confirmed by GetState.

        For a person at a terminal, who names an operation rather than a step: the
        state is asked first; an operation that state does not allow is still sent
        (the server decides), and reported as ignored when nothing moved.

        Raises
        ------
        EccIgnored
            When the board did not move; its message names the state.
        EccError
            As :meth:`run_step`.
        """
        op = Operation(operation)
        before = await self.get_state()
        try:
            step = step_for(op, before.state)
        except PlanError:
            reply = await self.transition(op, config, links)
            after = await self.get_state()
            if after.state == before.state:
                raise EccIgnored(self.url, str(op), after.state, None) from None
            return reply, after  # someone else moved it meanwhile: it is where it is
        return await self.run_step(step, config, links)

    async def _settled_state(self, step: Step) -> StateReply:
        """Poll GetState until no transition runs, within the transition timeout."""
        try:
            async with asyncio.timeout(self.transition_timeout):
                # A remote state: nothing to wait on but the next poll.
                while (state := await self.get_state()).transitioning:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise EccTimeout(self.url, f"{step.operation}: still "
                             f"{state.transition.label.lower()} after "
                             f"{self.transition_timeout:g} s") from None
        return state

    async def special(self, command: str, table: str = "") -> TextReply:
        """Send a ``Special`` command (asad-inject, connect, write, writereg)."""
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
