"""The async ECC client: every SOAP operation of getEccSoapServer, typed and timed out.

:mod:`.soap` writes each request and reads its answer (the protocol is the project's
``ecc.wsdl``); :mod:`.http` carries it, one connection per call, as getEccSoapServer
closes each after its answer.

Two generations of server are in the field and read requests differently: gSOAP up
to 2.8.29 qualifies the operation's children, from 2.8.30 it leaves them unqualified
and silently drops a prefixed child (``<ns0:configID>`` arrives as ""). So every
request is written in the one form both read, the default namespace with
unprefixed children (``<Describe xmlns="urn:ecc"><configID>...``), and answers are
read whether their children are qualified or not.

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
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from . import http, soap
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

#: GetState, GetConfigIDs, Special and ServerExit answer at once on a healthy server.
DEFAULT_STATE_TIMEOUT = 5.0
#: Operators give a transition about 120 s before calling it hung.
DEFAULT_TRANSITION_TIMEOUT = 120.0


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


def _user_agent() -> str:
    try:
        return f"attpcdaq/{version('attpcdaq')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "attpcdaq"


#: getEccSoapServer ignores the SOAPAction and the path; gSOAP clients send these.
_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""',
            "User-Agent": _user_agent()}


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
        self._closed = False

    async def __aenter__(self) -> EccClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End the client: each call's connection is closed with its answer, so
        nothing is left open; a call after this raises RuntimeError."""
        self._closed = True

    def __repr__(self) -> str:
        return f"EccClient({self.url!r})"

    async def _call(self, operation: str, timeout: float,
                    **arguments: str) -> dict[str, int | str]:
        """Call one SOAP operation and map every failure to an :class:`EccError`."""
        if self._closed:
            raise RuntimeError("the ECC client has been closed")
        try:
            body = soap.request(operation, **arguments)
        except ValueError as exc:  # a control character, say, which XML cannot carry
            raise EccProtocolError(self.url, f"{operation}: cannot be sent: {exc}") from None
        try:
            async with asyncio.timeout(timeout):
                reply = await http.post(self.url, body, _HEADERS)
        except TimeoutError:
            raise EccTimeout(self.url, f"{operation}: no answer within {timeout:g} s") from None
        except http.BadUrl as exc:
            raise EccUnreachable(self.url, f"{operation}: {exc}") from None
        except http.CannotConnect as exc:
            raise EccUnreachable(self.url, f"{operation}: cannot connect: "
                                 f"{exc.strerror}") from None
        except http.AnswerLost as exc:
            # Reset, closed before or amid the answer, or an answer that is not HTTP.
            raise EccAnswerLost(self.url, f"{operation}: connection closed without an "
                                f"answer: {exc}") from None
        except http.BadAnswer as exc:
            raise EccProtocolError(self.url, f"{operation}: malformed answer: {exc}") from None
        try:
            fields = soap.answer(operation, reply.content)
        except soap.SoapFault as exc:
            raise EccSoapFault(self.url, f"{operation}: SOAP fault: {exc}") from None
        except ValueError as exc:
            if reply.status_code != 200:  # a proxy's or a wrong server's error page
                raise EccHttpError(self.url, reply.status_code, f"{operation}: HTTP status "
                                   f"{reply.status_code}") from None
            raise EccProtocolError(self.url, f"{operation}: malformed answer: {exc}") from None
        if reply.status_code != 200:
            raise EccHttpError(self.url, reply.status_code,
                               f"{operation}: HTTP status {reply.status_code}")
        return fields

    async def get_state(self) -> StateReply:
        """Ask the server's state and the transition running, if any.

        Raises
        ------
        EccError
            When the server cannot be reached, times out or answers badly.
        """
        fields = await self._call("GetState", self.state_timeout)
        try:
            state, transition = State(fields["State"]), TransitionCode(fields["Transition"])
        except ValueError:
            raise EccProtocolError(self.url, f"GetState: unknown State {fields['State']!r} or "
                                   f"Transition {fields['Transition']!r}") from None
        return StateReply(state, transition, fields["ErrorCode"], fields["ErrorMessage"])

    async def _text(self, operation: str, timeout: float, **arguments: str) -> TextReply:
        fields = await self._call(operation, timeout, **arguments)
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
        fields = await self._call("ServerExit", self.state_timeout)
        if fields["ErrorCode"] != 0:
            raise EccRefused(self.url, "ServerExit", fields["ErrorCode"], fields["ErrorMessage"])
