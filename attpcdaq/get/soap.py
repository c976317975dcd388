"""The client's side of SOAP 1.1 for getEccSoapServer: write a request, read its answer.

The protocol is ``ecc.wsdl`` (document/literal, twelve operations of string
arguments, three answer types); :data:`OPERATIONS` is that file in Python, and
tests/get/test_soap_contract.py holds the two equal. Requests are written in the
one form every gSOAP generation reads (GET-PROTOCOL.md, "Namespaces"): the
operation in the default namespace, its children unprefixed::

    <SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
      <SOAP-ENV:Body><Describe xmlns="urn:ecc"><configID>...</configID>
        <table>...</table></Describe></SOAP-ENV:Body></SOAP-ENV:Envelope>

Answers are read whatever their prefixes, their children qualified (gSOAP up to
2.8.29) or not (2.8.30 and later). lxml does the XML; what is left is small enough
to be written down here: a general SOAP library (zeep, used until the engine polled
hundreds of servers) spent more CPU per GetState than the connection itself, and
had to be rewritten on the way out to produce this form.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lxml import etree

__all__ = ["ECC_NS", "OPERATIONS", "SOAP_ENV", "Signature", "SoapFault", "answer", "request"]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ECC_NS = "urn:ecc"
_BODY = f"{{{SOAP_ENV}}}Body"
_FAULT = f"{{{SOAP_ENV}}}Fault"


@dataclass(frozen=True, slots=True)
class Signature:
    """One operation of ecc.wsdl: its string arguments and its answer."""

    arguments: tuple[str, ...]
    answer: str
    #: The answer's fields and their XML Schema types (``int`` or ``str``), in order.
    fields: tuple[tuple[str, type], ...]


_ERROR = (("ErrorCode", int), ("ErrorMessage", str))
_STATE = Signature((), "ResponseState", (*_ERROR, ("State", int), ("Transition", int)))
_TEXT_FIELDS = (*_ERROR, ("Text", str))
_TRANSITION = Signature(("configID", "table"), "ResponseText", _TEXT_FIELDS)

#: Every operation, as ecc.wsdl declares it.
OPERATIONS: dict[str, Signature] = {
    "GetState": _STATE,
    "GetConfigIDs": Signature((), "ResponseText", _TEXT_FIELDS),
    **{name: _TRANSITION for name in ("Describe", "Prepare", "Configure", "Start", "Stop",
                                      "Pause", "Resume", "Breakup", "Undo")},
    "Special": Signature(("command", "table"), "ResponseText", _TEXT_FIELDS),
    "ServerExit": Signature((), "Response", _ERROR),
}

#: gSOAP leaves an empty string out of an answer; a missing string field is "".
_MAY_BE_EMPTY = frozenset({"ErrorMessage", "Text"})

# Answers come from the network: no entities, no DTD, no network. Configure's answer
# holds every configuration file's text, which can pass lxml's limit on one text node.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=True)


class SoapFault(Exception):
    """The server answered a SOAP Fault; the message is its faultstring."""


def request(operation: str, **arguments: str) -> bytes:
    """The SOAP request for ``operation``, every argument of its signature given.

    Raises
    ------
    KeyError
        For an operation ecc.wsdl does not have.
    TypeError
        When the arguments are not exactly the operation's.
    """
    signature = OPERATIONS[operation]
    if set(arguments) != set(signature.arguments):
        raise TypeError(f"{operation} takes {', '.join(signature.arguments) or 'nothing'}, "
                        f"not {', '.join(sorted(arguments)) or 'nothing'}")
    if not arguments:
        return _constant_request(operation)
    envelope, call = _envelope(operation)
    for name in signature.arguments:
        etree.SubElement(call, f"{{{ECC_NS}}}{name}").text = arguments[name]
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


@functools.cache
def _constant_request(operation: str) -> bytes:
    # GetState, asked of every server every second, is the same bytes every time.
    return etree.tostring(_envelope(operation)[0], xml_declaration=True, encoding="utf-8")


def _envelope(operation: str) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV})
    body = etree.SubElement(envelope, _BODY)
    # Default namespace: the children below are in urn:ecc (which the old servers
    # want) and unprefixed (which the new ones need).
    return envelope, etree.SubElement(body, f"{{{ECC_NS}}}{operation}", nsmap={None: ECC_NS})


def answer(operation: str, content: bytes) -> dict[str, int | str]:
    """Read the answer to ``operation``: its fields by name, typed.

    Raises
    ------
    SoapFault
        When the answer is a SOAP Fault.
    ValueError
        When it is not the operation's answer, saying what is wrong.
    """
    signature = OPERATIONS[operation]
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not XML: {exc}") from None
    body = root.find(_BODY) if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
    if body is None:
        raise ValueError(f"not a SOAP envelope: <{_local(root)}>")
    reply = next((child for child in body if isinstance(child.tag, str)), None)
    if reply is None:
        raise ValueError("empty answer")
    if reply.tag == _FAULT:
        # A Fault's children are unqualified by SOAP's own rule.
        raise SoapFault(" ".join((reply.findtext("faultstring") or "no faultstring").split()))
    if reply.tag != f"{{{ECC_NS}}}{signature.answer}":
        raise ValueError(f"expected {signature.answer}, got <{_local(reply)}>")
    found: dict[str, str] = {}
    for child in reply:
        if isinstance(child.tag, str) and etree.QName(child).namespace in (None, ECC_NS):
            found.setdefault(etree.QName(child).localname, child.text or "")
    values: dict[str, int | str] = {}
    for name, kind in signature.fields:
        text = found.get(name)
        if text is None and name not in _MAY_BE_EMPTY:
            raise ValueError(f"answer lacks {name}")
        if kind is int:
            try:
                values[name] = int(text)
            except ValueError:
                raise ValueError(f"{name} is not an integer: {text[:40]!r}") from None
        else:
            values[name] = text or ""
    return values


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else "?"
