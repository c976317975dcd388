"""What the emulated ECC server reads and writes on the wire: raw SOAP and the control endpoint."""

import asyncio
from xml.sax.saxutils import escape

import httpx
import pytest
from lxml import etree

from attpcdaq.emulator import EccEmulatorGroup
from attpcdaq.emulator.ecc import parse_transition_seconds
from attpcdaq.get import (
    ConfigId,
    EccClient,
    EccRefused,
    EccUnreachable,
    Operation,
    State,
    soap,
)
from attpcdaq.get.http import post

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
COBO0 = ConfigId("cobo0", "experiment", "experiment")


def envelope(body: str, env: str = SOAP_ENV, prefix: str = "S") -> str:
    """A request whose envelope uses ``prefix`` and holds ``body``."""
    return (f'<?xml version="1.0"?><{prefix}:Envelope xmlns:{prefix}="{env}"><{prefix}:Body>'
            f"{body}</{prefix}:Body></{prefix}:Envelope>")


async def test_any_prefix_and_any_path_are_served(server, post):
    body = ('<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            '<q:GetState xmlns:q="urn:ecc"/></e:Body></e:Envelope>')
    answer = await post(server.url, body, path="/some/path", SOAPAction='"urn:ecc#GetState"')
    assert (answer.status, answer.element.tag) == (200, "{urn:ecc}ResponseState")
    assert [answer.field(name) for name in ("ErrorCode", "ErrorMessage", "State",
                                            "Transition")] == ["0", "", "1", "0"]
    assert answer.content_type.startswith("text/xml")
    # Written as gSOAP writes it.
    assert answer.raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<SOAP-ENV:Envelope")
    assert b"<ecc:ResponseState><ErrorCode>0</ErrorCode><ErrorMessage/>" in answer.raw


@pytest.mark.parametrize("operation", [
    '<Special xmlns="urn:ecc"><command>ping</command><table/></Special>',
    '<q:Special xmlns:q="urn:ecc"><command>ping</command><table/></q:Special>',
])
async def test_a_default_namespace_and_unqualified_arguments_are_read(server, post, operation):
    answer = await post(server.url, envelope(operation))
    assert answer.element.tag == "{urn:ecc}ResponseText"
    assert answer.field("ErrorMessage") == "Special command 'ping' is unknown."


DESCRIBE_PREFIXED = ('<q:Describe xmlns:q="urn:ecc"><q:configID>{config}</q:configID>'
                     "<q:table/></q:Describe>")


@pytest.mark.parametrize(("gsoap", "code", "message"), [
    ("2.8", "1", "Configuration identifier '' is not valid."),
    ("2.7", "0", ""),
])
async def test_prefixed_arguments_are_dropped_by_the_newer_gsoap_only(
        config_dir, post, gsoap, code, message):
    # zeep's form for a qualified schema: what broke the original attpc-daq in 2021.
    body = envelope(DESCRIBE_PREFIXED.format(config=escape(COBO0.as_xml())))
    async with EccEmulatorGroup(1, config_dir=config_dir, transition_seconds=0.01,
                                gsoap=gsoap) as group:
        answer = await post(group.servers[0].url, body)
    assert (answer.field("ErrorCode"), answer.field("ErrorMessage")) == (code, message)


@pytest.mark.parametrize(("gsoap", "child_namespace"), [("2.8", None), ("2.7", "urn:ecc")])
async def test_answers_are_qualified_by_the_older_gsoap_only(
        config_dir, post, gsoap, child_namespace):
    async with EccEmulatorGroup(1, config_dir=config_dir, gsoap=gsoap) as group:
        answer = await post(group.servers[0].url, envelope('<GetState xmlns="urn:ecc"/>'))
        async with EccClient(group.servers[0].url) as ecc:
            assert (await ecc.get_state()).state == State.IDLE  # the client reads both
    assert etree.QName(answer.element).namespace == "urn:ecc"
    assert {etree.QName(child).namespace for child in answer.element} == {child_namespace}


async def test_every_answer_closes_its_connection(server):
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(server.url, content=envelope('<GetState xmlns="urn:ecc"/>'))
    assert response.headers["connection"].lower() == "close"


async def test_a_chunked_request_is_read(server):
    async def chunks():
        body = envelope('<GetState xmlns="urn:ecc"/>').encode()
        for start in range(0, len(body), 50):
            yield body[start:start + 50]

    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(server.url, content=chunks())
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 200 and b"<State>1</State>" in response.content


async def test_a_request_too_large_is_refused_and_the_server_keeps_serving(server, monkeypatch):
    monkeypatch.setattr("attpcdaq.emulator.http.MAX_REQUEST_BYTES", 1000)
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(server.url, content=envelope(
            f'<Special xmlns="urn:ecc"><command>{"x" * 2000}</command></Special>'))
    assert response.status_code == 413 and b"request too large" in response.content
    async with EccClient(server.url) as ecc:
        assert (await ecc.get_state()).state == State.IDLE


async def test_a_transition_goes_on_when_its_client_goes_away(server):
    # As on the real server: the step runs to its end, whoever waits for the answer.
    body = envelope('<Describe xmlns="urn:ecc"><configID>'
                    + escape(ConfigId("cobo0", "experiment", "experiment").as_xml())
                    + "</configID><table/></Describe>").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    async with EccClient(server.url) as ecc:
        while not (await ecc.get_state()).transitioning:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        writer.transport.abort()
        while (state := await ecc.get_state()).transitioning:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert state.state == State.DESCRIBED


@pytest.mark.parametrize("operation", ["Describe", "Special"])
async def test_a_missing_argument_arrives_empty(server, post, operation):
    answer = await post(server.url, envelope(f'<{operation} xmlns="urn:ecc"/>'))
    assert answer.status == 200
    assert answer.field("ErrorMessage") == {
        "Describe": "Configuration identifier '' is not valid.",
        "Special": "Special command '' is unknown."}[operation]


@pytest.mark.parametrize(("body", "code", "reason"), [
    (envelope('<q:Launch xmlns:q="urn:ecc"/>'), "Client", "Method 'Launch' not implemented"),
    (envelope('<q:GetState xmlns:q="urn:other"/>'), "Client", "not recognized"),
    (envelope("<GetState/>"), "Client", "not recognized"),
    (envelope(""), "Client", "the SOAP Body is empty"),
    ("<S:Envelope xmlns:S='http://schemas.xmlsoap.org/soap/envelope/'><S:Body>", "Client",
     "malformed XML"),
    ("", "Client", "empty request"),
    ("<GetState xmlns='urn:ecc'/>", "Client", "not a SOAP Envelope"),
    (envelope('<q:GetState xmlns:q="urn:ecc"/>', env="http://www.w3.org/2003/05/soap-envelope"),
     "VersionMismatch", "not a SOAP 1.1 envelope"),
    ('<!DOCTYPE S [<!ENTITY x "boom">]>' + envelope(
        '<q:Special xmlns:q="urn:ecc"><q:command>&x;</q:command><q:table/></q:Special>'
    ).removeprefix('<?xml version="1.0"?>'), "Client", "must not contain a DTD"),
    (f'<S:Envelope xmlns:S="{SOAP_ENV}"><S:Header><h:Auth xmlns:h="urn:h" '
     f'S:mustUnderstand="1"/></S:Header><S:Body><q:GetState xmlns:q="urn:ecc"/></S:Body>'
     "</S:Envelope>", "MustUnderstand", "header <Auth> not understood"),
])
async def test_bad_requests_get_a_fault_and_the_server_keeps_serving(
        server, post, body, code, reason):
    answer = await post(server.url, body)
    assert (answer.status, answer.element.tag) == (500, f"{{{SOAP_ENV}}}Fault")
    assert answer.field("faultcode") == f"SOAP-ENV:{code}"
    assert reason in answer.field("faultstring")
    async with EccClient(server.url) as ecc:
        assert (await ecc.get_state()).state == State.IDLE


async def test_markup_in_an_argument_is_read_as_its_text_and_a_repeat_is_skipped(
        server, post):
    # As gSOAP 2.8.124 does: unescaped XML is the string; the first of two is kept.
    body = envelope(f'<Describe xmlns="urn:ecc"><configID>{COBO0.as_xml()}</configID>'
                    "<configID>ignored</configID><table/></Describe>")
    answer = await post(server.url, body)
    assert (answer.field("ErrorCode"), answer.field("ErrorMessage")) == ("0", "")
    assert server.ecc.state == State.DESCRIBED


async def test_a_malformed_config_id_is_a_failed_transition_not_a_fault(server, post):
    body = envelope('<Describe xmlns="urn:ecc"><configID>&lt;ConfigId&gt;</configID>'
                    "<table/></Describe>")
    answer = await post(server.url, body)
    assert (answer.status, answer.field("ErrorCode")) == (200, "1")
    assert answer.field("ErrorMessage") == "Configuration identifier '<ConfigId>' is not valid."
    assert server.ecc.state == State.IDLE


async def test_the_project_client_reads_the_emulators_fault(server):
    # No sound request of EccClient draws a Fault, so add a header the server must refuse,
    # and read the answer as the client does.
    request = etree.fromstring(soap.request("GetState"))
    header = etree.Element(f"{{{SOAP_ENV}}}Header")
    etree.SubElement(header, "{urn:auth}Token", {f"{{{SOAP_ENV}}}mustUnderstand": "1"})
    request.insert(0, header)
    answer = await post(server.url, etree.tostring(request), {"Content-Type": "text/xml"})
    assert answer.status_code == 500
    with pytest.raises(soap.SoapFault, match="header <Token> not understood"):
        soap.answer("GetState", answer.content)


async def control(server, payload: str | dict) -> httpx.Response:
    """POST ``payload`` to the server's control endpoint."""
    async with httpx.AsyncClient(timeout=5) as http:
        url = server.url + "_emulator/fault"
        if isinstance(payload, dict):
            return await http.post(url, json=payload)
        return await http.post(url, content=payload)


async def test_the_control_endpoint_arms_and_clears_faults(server, client):
    response = await control(server, {"action": "fail", "operation": "Describe",
                                      "message": "no clock"})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "faults": {"Describe": "fail"}}
    with pytest.raises(EccRefused, match="no clock"):
        await client.transition(Operation.DESCRIBE, COBO0, None)
    for action in ("hang", "crash"):
        response = await control(server, {"action": action, "operation": "Start"})
        assert response.json()["faults"] == {"Start": action}
    response = await control(server, {"action": "clear"})
    assert (response.status_code, response.json()["faults"]) == (200, {})
    assert server.ecc.faults == {}


@pytest.mark.parametrize(("payload", "error"), [
    ("{not json", "the body is not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"action": "explode", "operation": "Start"}, "action must be one of fail, hang, crash"),
    ({"action": ["fail"], "operation": "Start"}, "action must be one of"),
    ({"action": "fail", "operation": "Launch"}, "operation must be one of Describe"),
    ({"action": "hang"}, "not None"),
    ({"action": "fail", "operation": "Start", "message": 42}, "message must be a string"),
])
async def test_the_control_endpoint_refuses_bad_requests(server, payload, error):
    response = await control(server, payload)
    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert error in response.json()["error"]
    assert server.ecc.faults == {}


async def test_a_crash_armed_over_http_kills_the_server(server, client):
    await control(server, {"action": "crash", "operation": "Describe"})
    with pytest.raises(EccUnreachable, match="closed without an answer"):
        await client.transition(Operation.DESCRIBE, COBO0, None)
    assert server.stop_reason == "crash" or not server.serving


@pytest.mark.parametrize(("text", "expected"), [
    ("1.5", 1.5),
    ("0", 0.0),
    ("Describe=1,configure=3", {Operation.DESCRIBE: 1.0, Operation.CONFIGURE: 3.0}),
])
def test_transition_seconds_are_parsed(text, expected):
    assert parse_transition_seconds(text) == expected


@pytest.mark.parametrize(("text", "error"), [
    ("soon", "'soon' is not a number of seconds"),
    ("-1", "must be a number of seconds >= 0"),
    ("nan", "must be a number of seconds >= 0"),
    ("Launch=1", "unknown operation 'Launch'"),
    ("Describe=x", "'x' is not a number of seconds"),
])
def test_bad_transition_seconds_are_refused(text, error):
    with pytest.raises(ValueError, match=error):
        parse_transition_seconds(text)
