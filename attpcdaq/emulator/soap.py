"""The ECC server's side of SOAP 1.1: read a request, write an answer or a Fault.

A request names its operation by the one element of its Body, in ``urn:ecc``
whatever the prefix (or the default namespace); every argument is a string child::

    <e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>
      <Describe xmlns="urn:ecc"><configID>&lt;ConfigId&gt;...</configID>
        <table>...</table></Describe>
    </e:Body></e:Envelope>

Two generations of gSOAP build the real servers, and they differ on the operation's
children (:class:`Generation`): up to 2.8.29 they are qualified, and a prefixed
child (``<q:configID>``) is read; from 2.8.30 they are unqualified, and a prefixed
child is silently skipped, so that argument arrives as "". A missing argument is ""
in both; a repeated one is read once (the first). Answers are written as gSOAP
2.8.124 writes them (compared in tests/wire against a server built with it):
prefixes ``SOAP-ENV`` and ``ecc``, empty strings self-closed, the children
qualified or not by generation::

    <SOAP-ENV:Envelope xmlns:SOAP-ENV="..." xmlns:ecc="urn:ecc"><SOAP-ENV:Body>
      <ecc:ResponseState><ErrorCode>0</ErrorCode><ErrorMessage/>
        <State>1</State><Transition>0</Transition></ecc:ResponseState>
    </SOAP-ENV:Body></SOAP-ENV:Envelope>
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field

from lxml import etree

from ..get.states import Operation

__all__ = [
    "ECC_NS",
    "OPERATION_ARGUMENTS",
    "SOAP_ENV",
    "Generation",
    "SoapError",
    "SoapRequest",
    "fault",
    "parse_request",
    "response",
    "response_state",
    "response_text",
]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ECC_NS = "urn:ecc"
# gSOAP declares these on every answer; clients ignore the ones they do not use.
_NSMAP = {
    "SOAP-ENV": SOAP_ENV,
    "SOAP-ENC": "http://schemas.xmlsoap.org/soap/encoding/",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "xsd": "http://www.w3.org/2001/XMLSchema",
    "ecc": ECC_NS,  # gSOAP writes the header's own prefix
}

#: The required string arguments of every operation, as in ecc.wsdl.
OPERATION_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "GetState": (),
    "GetConfigIDs": (),
    **{str(op): ("configID", "table") for op in Operation},
    "Special": ("command", "table"),
    "ServerExit": (),
}

# Requests come from the network: no entities, no DTD loading, no network, no huge trees.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False)


class Generation(enum.StrEnum):
    """The gSOAP generation a server was built with (GET-PROTOCOL.md, "Namespaces")."""

    #: gSOAP up to 2.8.29: qualified children, prefixed children read.
    QUALIFIED = "2.7"
    #: gSOAP 2.8.30 and later (what current GET releases use): unqualified children,
    #: prefixed children dropped.
    UNQUALIFIED = "2.8"


class SoapError(ValueError):
    """A request that cannot be served; answered with a Fault carrying ``code``."""

    def __init__(self, message: str, code: str = "SOAP-ENV:Client") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """One parsed request: the operation's name and its string arguments."""

    operation: str
    arguments: dict[str, str] = field(default_factory=dict)


def _qualified(tag: object, namespace: str) -> str | None:
    """The local name of ``tag`` if it is an element in ``namespace``, else None."""
    if not isinstance(tag, str):
        return None  # comments and processing instructions
    name = etree.QName(tag)
    return name.localname if name.namespace == namespace else None


def _elements(node: etree._Element) -> list[etree._Element]:
    return [child for child in node if isinstance(child.tag, str)]


def _envelope_body(body: bytes) -> etree._Element:
    """Parse the envelope and return its Body element."""
    if not body or not body.strip():
        raise SoapError("empty request: expected a SOAP envelope")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapError(f"malformed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise SoapError("a SOAP message must not contain a DTD")
    if etree.QName(root).localname == "Envelope" and etree.QName(root).namespace != SOAP_ENV:
        raise SoapError(f"not a SOAP 1.1 envelope (namespace {etree.QName(root).namespace!r})",
                        "SOAP-ENV:VersionMismatch")
    if _qualified(root.tag, SOAP_ENV) != "Envelope":
        raise SoapError(f"root element is <{etree.QName(root).localname}>, not a SOAP Envelope")
    parts = {_qualified(child.tag, SOAP_ENV): child for child in _elements(root)}
    _check_headers(parts.get("Header"))
    if "Body" not in parts:
        raise SoapError("the SOAP envelope has no Body")
    return parts["Body"]


def _check_headers(header: etree._Element | None) -> None:
    """Refuse a header block the client insists on: this server understands none."""
    for block in _elements(header) if header is not None else ():
        if block.get(f"{{{SOAP_ENV}}}mustUnderstand") in ("1", "true"):
            raise SoapError(f"header <{etree.QName(block).localname}> not understood",
                            "SOAP-ENV:MustUnderstand")


def parse_request(body: bytes, generation: Generation = Generation.UNQUALIFIED) -> SoapRequest:
    """Read a SOAP request: its operation (an element in ``urn:ecc``) and arguments.

    Raises
    ------
    SoapError
        When the body is not XML, not a SOAP 1.1 envelope or names no known operation.
    """
    elements = _elements(_envelope_body(body))
    if not elements:
        raise SoapError("the SOAP Body is empty: expected an operation")
    node = elements[0]
    operation = _qualified(node.tag, ECC_NS)
    if operation not in OPERATION_ARGUMENTS:
        qname = etree.QName(node)
        raise SoapError(f"Method '{qname.localname}' not implemented: method name or "
                        "namespace not recognized")
    return SoapRequest(operation, _arguments(node, operation, generation))


def _arguments(node: etree._Element, operation: str,
               generation: Generation) -> dict[str, str]:
    """The string arguments of ``operation``; unknown children are ignored, missing ones
    are "" (gSOAP fills in an absent string)."""
    found: dict[str, str] = {}
    for child in _elements(node):
        name = etree.QName(child)
        # Both generations read an unprefixed child, whether it inherits urn:ecc from
        # a default namespace or has none; only the old one reads a prefixed child.
        if name.namespace not in (ECC_NS, None):
            continue
        if child.prefix is not None and generation is Generation.UNQUALIFIED:
            continue
        if name.localname in found:
            continue  # gSOAP takes the first and skips the rest
        # gSOAP reads markup inside a string argument as the string (seen with 2.8.124).
        found[name.localname] = (child.text or "") + "".join(
            etree.tostring(inner, encoding="unicode") for inner in child)
    return {arg: found.get(arg, "") for arg in OPERATION_ARGUMENTS[operation]}


def _envelope(payload: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=_NSMAP)
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(payload)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _answer(name: str, generation: Generation, **fields: object) -> bytes:
    node = etree.Element(f"{{{ECC_NS}}}{name}", nsmap=_NSMAP)
    child_ns = f"{{{ECC_NS}}}" if generation is Generation.QUALIFIED else ""
    for key, value in fields.items():
        # None, not "": gSOAP writes an empty string as <ErrorMessage/>.
        etree.SubElement(node, f"{child_ns}{key}").text = str(value) or None
    return _envelope(node)


def response(code: int, message: str,
             generation: Generation = Generation.UNQUALIFIED) -> bytes:
    """The ``Response`` answer (ServerExit's)."""
    return _answer("Response", generation, ErrorCode=int(code), ErrorMessage=message)


def response_text(code: int, message: str, text: str,
                  generation: Generation = Generation.UNQUALIFIED) -> bytes:
    """The ``ResponseText`` answer (transitions, GetConfigIDs, Special)."""
    return _answer("ResponseText", generation, ErrorCode=int(code), ErrorMessage=message,
                   Text=text)


@functools.lru_cache(maxsize=256)
def response_state(code: int, message: str, state: int, transition: int,
                   generation: Generation = Generation.UNQUALIFIED) -> bytes:
    """The ``ResponseState`` answer (GetState): a few distinct ones, asked of a hundred
    servers every second, so each is built once (bytes are not changed by anyone)."""
    return _answer("ResponseState", generation, ErrorCode=int(code), ErrorMessage=message,
                   State=int(state), Transition=int(transition))


def fault(message: str, code: str = "SOAP-ENV:Client") -> bytes:
    """A SOAP 1.1 Fault; sent with HTTP status 500, as gSOAP does."""
    node = etree.Element(f"{{{SOAP_ENV}}}Fault", nsmap=_NSMAP)
    # faultcode and faultstring are unqualified in SOAP 1.1.
    etree.SubElement(node, "faultcode").text = code
    etree.SubElement(node, "faultstring").text = message
    return _envelope(node)
