"""The client's SOAP codec against the protocol as written down: ecc.wsdl.

``attpcdaq.get.soap.OPERATIONS`` is the WSDL in Python; these tests read the WSDL
itself and hold the two equal, and check what the codec writes and reads.
"""

from pathlib import Path

import pytest
from lxml import etree

from attpcdaq.get import soap

WSDL = Path(soap.__file__).with_name("ecc.wsdl")
NS = {"w": "http://schemas.xmlsoap.org/wsdl/", "xsd": "http://www.w3.org/2001/XMLSchema"}
XSD_TYPES = {"xsd:int": int, "xsd:string": str}


def wsdl_operations() -> dict[str, soap.Signature]:
    root = etree.parse(str(WSDL)).getroot()

    def children(element_name: str) -> list[tuple[str, str]]:
        element = root.find(f".//xsd:schema/xsd:element[@name='{element_name}']", NS)
        return [(e.get("name"), e.get("type"))
                for e in element.iterfind(".//xsd:sequence/xsd:element", NS)]

    def element_of(message: str) -> str:
        part = root.find(f"w:message[@name='{message.split(':')[1]}']/w:part", NS)
        return part.get("element").split(":")[1]

    operations = {}
    for op in root.iterfind("w:portType/w:operation", NS):
        request = element_of(op.find("w:input", NS).get("message"))
        answer = element_of(op.find("w:output", NS).get("message"))
        assert request == op.get("name")  # document/literal, wrapped
        operations[op.get("name")] = soap.Signature(
            tuple(name for name, _ in children(request)), answer,
            tuple((name, XSD_TYPES[kind]) for name, kind in children(answer)))
    return operations


def test_the_codec_has_every_operation_of_the_wsdl_as_declared():
    assert wsdl_operations() == soap.OPERATIONS


@pytest.mark.parametrize("operation", sorted(soap.OPERATIONS))
def test_every_request_is_in_the_form_every_gsoap_generation_reads(operation):
    arguments = {name: f"<{name}> & 'x'" for name in soap.OPERATIONS[operation].arguments}
    root = etree.fromstring(soap.request(operation, **arguments))
    (call,) = root.find(f"{{{soap.SOAP_ENV}}}Body")
    assert call.tag == f"{{urn:ecc}}{operation}" and call.prefix is None
    assert [(etree.QName(c).localname, c.prefix, c.text) for c in call] == [
        (name, None, value) for name, value in arguments.items()]


def test_a_request_with_other_arguments_is_refused_before_anything_is_sent():
    with pytest.raises(TypeError, match="Describe takes configID, table, not configID"):
        soap.request("Describe", configID="")
    with pytest.raises(KeyError):
        soap.request("Reboot")


def answer(body: str) -> bytes:
    return (f'<S:Envelope xmlns:S="{soap.SOAP_ENV}" xmlns:e="urn:ecc"><S:Body>{body}'
            "</S:Body></S:Envelope>").encode()


@pytest.mark.parametrize("prefix", ["e:", ""])
def test_an_answer_is_read_with_its_children_qualified_or_not(prefix):
    p = prefix
    fields = soap.answer("GetState", answer(
        f"<e:ResponseState><{p}ErrorCode>0</{p}ErrorCode><{p}ErrorMessage/>"
        f"<{p}State> 4 </{p}State><{p}Transition>0</{p}Transition></e:ResponseState>"))
    assert fields == {"ErrorCode": 0, "ErrorMessage": "", "State": 4, "Transition": 0}


@pytest.mark.parametrize(("body", "error"), [
    ("<e:ResponseText><ErrorCode>0</ErrorCode><Text>x</Text></e:ResponseText>",
     "expected ResponseState, got <ResponseText>"),
    ("<e:ResponseState><ErrorCode>0</ErrorCode><State>1</State></e:ResponseState>",
     "answer lacks Transition"),
    ("<e:ResponseState><ErrorCode>0</ErrorCode><State>one</State><Transition>0</Transition>"
     "</e:ResponseState>", "State is not an integer: 'one'"),
    ('<e:ResponseState><ErrorCode>0</ErrorCode><o:State xmlns:o="urn:other">1</o:State>'
     "<Transition>0</Transition></e:ResponseState>", "answer lacks State"),
    ("", "empty answer"),
])
def test_an_answer_that_is_not_the_operations_says_what_is_wrong(body, error):
    with pytest.raises(ValueError, match=error):
        soap.answer("GetState", answer(body))


def test_a_fault_is_read_and_entities_are_never_expanded():
    with pytest.raises(soap.SoapFault, match=r"^no clock$"):
        soap.answer("Configure", answer("<S:Fault><faultcode>S:Server</faultcode>"
                                        "<faultstring>no\n  clock</faultstring></S:Fault>"))
    hostile = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               + answer("<e:ResponseText><ErrorCode>0</ErrorCode><Text>&x;</Text>"
                        "</e:ResponseText>"))
    assert "root:" not in str(soap.answer("GetConfigIDs", hostile)["Text"])
