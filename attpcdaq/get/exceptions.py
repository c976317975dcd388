"""Errors of the GET protocol layer.

Catch at the level you care about::

    GetError
    ├── PlanError             no allowed path between two states
    ├── XmlError              a ConfigId / DataLinkSet / config list that cannot be read
    └── EccError              anything that went wrong talking to one ECC server (has .url)
        ├── EccUnreachable    connection refused, reset or closed before an answer
        │   └── EccAnswerLost the request went out, the answer never came
        ├── EccTimeout        no answer within the timeout
        ├── EccHttpError      an HTTP status other than 200 (and not a SOAP fault)
        ├── EccSoapFault      the server answered with a SOAP Fault
        ├── EccProtocolError  an answer that is not the SOAP the protocol promises
        ├── EccRefused        the server answered ErrorCode != 0 (has .code, .message)
        │   └── EccBusy       refused because another transition is running
        └── EccIgnored        answered 0, but GetState shows the board did not move
"""

from __future__ import annotations

__all__ = [
    "EccAnswerLost",
    "EccBusy",
    "EccError",
    "EccHttpError",
    "EccIgnored",
    "EccProtocolError",
    "EccRefused",
    "EccSoapFault",
    "EccTimeout",
    "EccUnreachable",
    "GetError",
    "PlanError",
    "XmlError",
]

BUSY_MESSAGE = "The ECC state machine is busy!"


class GetError(Exception):
    """Base of every error raised by :mod:`attpcdaq.get`."""


class PlanError(GetError, ValueError):
    """No allowed sequence of transitions leads from one state to the other."""


class XmlError(GetError, ValueError):
    """A protocol XML document is malformed or lacks what it must hold."""


class EccError(GetError):
    """Talking to one ECC server failed; the message names the server."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"ECC server {url}: {detail}")


class EccUnreachable(EccError):
    """The server could not be reached or closed the connection without answering."""


class EccAnswerLost(EccUnreachable):
    """The request was sent but the connection closed before the answer came.

    Unlike a refused connection, the server may have done what was asked.
    """


class EccTimeout(EccError):
    """The server did not answer within the timeout."""


class EccHttpError(EccError):
    """The server answered with an unexpected HTTP status."""

    def __init__(self, url: str, status: int, detail: str) -> None:
        self.status = status
        super().__init__(url, detail)


class EccSoapFault(EccError):
    """The server answered with a SOAP Fault."""


class EccProtocolError(EccError):
    """The answer was not the SOAP the protocol defines."""


class EccRefused(EccError):
    """The server answered with a non-zero ErrorCode."""

    def __init__(self, url: str, operation: str, code: int, message: str) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        super().__init__(url, f"{operation} refused (ErrorCode {code}): {message}")


class EccBusy(EccRefused):
    """Refused because the server's state machine is running another transition."""


class EccIgnored(EccError):
    """The server answered ErrorCode 0 but the board is not where the step leads.

    The real server ignores a transition its state does not allow and still
    answers 0, so only GetState tells. The detail reads ``ignored Configure: it
    is Described``, to follow the board's name.
    """

    def __init__(self, url: str, operation: str, state, target) -> None:
        self.operation = operation
        self.state = state
        self.target = target
        super().__init__(url, f"ignored {operation}: it is {state.label}")
