"""The SOAP wire against real gSOAP: the same tests on three servers (see conftest.py).

``gsoap`` is built by Debian's gSOAP 2.8 from tests/gsoap/ecc.h, declared as the real
getEccSoapServer's header is; ``emulator-2.8`` must behave as it does (answer children
unqualified, prefixed request children dropped) and ``emulator-2.7`` as a server built
with gSOAP 2.8.29 or older (children qualified, prefixed ones read). GET-PROTOCOL.md is
the truth; a difference between the emulator and gSOAP shows as a failing test here.
"""

import asyncio
from dataclasses import dataclass
from xml.sax.saxutils import escape

import httpx
import pytest
from lxml import etree

from attpcdaq.get import (
    ConfigId,
    DataLink,
    DataLinkSet,
    EccClient,
    EccRefused,
    Operation,
    State,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ECC = "urn:ecc"
CONFIG = ConfigId("cobo0", "experiment", "experiment")
LINKS = DataLinkSet((DataLink("CoBo[0]", "DataRouter0", "127.0.0.1", 46005),))
NOT_VALID = "Configuration identifier '' is not valid."


@dataclass
class Answer:
    """One raw HTTP answer: status, headers, bytes and the element in the SOAP Body."""

    status: int
    headers: httpx.Headers
    raw: bytes
    root: etree._Element

    @property
    def element(self) -> etree._Element:
        (body,) = self.root.iterfind(f"{{{SOAP_ENV}}}Body")
        (element,) = body
        return element

    def field(self, name: str) -> str:
        """A child's text, by local name whatever its namespace; "" when empty."""
        found = [child for child in self.element if etree.QName(child).localname == name]
        assert len(found) == 1, f"{name} in {self.raw!r}"
        return found[0].text or ""

    def children(self) -> list[tuple[str | None, str]]:
        return [(etree.QName(c).namespace, etree.QName(c).localname) for c in self.element]

    def names(self) -> set[tuple[str | None, str]]:
        """Every element of the envelope as (namespace, local name)."""
        return {(etree.QName(e).namespace, etree.QName(e).localname) for e in self.root.iter()}


def envelope(body: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="{SOAP_ENV}">'
            f"<S:Body>{body}</S:Body></S:Envelope>")


def call(operation: str, **arguments: str) -> str:
    """The form every gSOAP reads: default namespace, unprefixed children, escaped text."""
    children = "".join(f"<{key}>{escape(value)}</{key}>" for key, value in arguments.items())
    return envelope(f'<{operation} xmlns="{ECC}">{children}</{operation}>')


def prefixed(operation: str, **arguments: str) -> str:
    """zeep's form for a qualified schema: every child prefixed ``ns0:``."""
    children = "".join(f"<ns0:{key}>{escape(value)}</ns0:{key}>"
                       for key, value in arguments.items())
    return envelope(f'<ns0:{operation} xmlns:ns0="{ECC}">{children}</ns0:{operation}>')


def step(operation: str, config: ConfigId = CONFIG, links: DataLinkSet = LINKS) -> str:
    return call(operation, configID=config.as_xml(), table=links.as_xml())


async def post(url: str, body: str) -> Answer:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(url, content=body.encode(),
                                headers={"Content-Type": "text/xml; charset=utf-8",
                                         "SOAPAction": '""'})
    return Answer(reply.status_code, reply.headers, reply.content,
                  etree.fromstring(reply.content))


async def state_of(url: str) -> int:
    answer = await post(url, call("GetState"))
    assert (answer.field("ErrorCode"), answer.field("Transition")) == ("0", "0")
    return int(answer.field("State"))


async def walk(url: str, *operations: str) -> None:
    """Run transitions over raw SOAP, each one answered 0."""
    for operation in operations:
        answer = await post(url, step(operation))
        assert (answer.field("ErrorCode"), answer.field("ErrorMessage")) == ("0", ""), operation


async def test_the_default_namespace_form_is_read_everywhere(server):
    answer = await post(server.url, step("Describe"))
    assert (answer.status, answer.field("ErrorCode"), answer.field("ErrorMessage")) == (
        200, "0", "")
    senders = etree.fromstring(answer.field("Text").encode())
    assert [node.get("id") for node in senders.iter("DataSender")] == ["CoBo[0]"]
    assert await state_of(server.url) == State.DESCRIBED


async def test_prefixed_children_are_dropped_by_gsoap_2_8_and_read_by_2_7(server):
    answer = await post(server.url, prefixed("Describe", configID=CONFIG.as_xml(),
                                             table=LINKS.as_xml()))
    assert answer.status == 200
    if server.unqualified:
        assert (answer.field("ErrorCode"), answer.field("ErrorMessage")) == ("1", NOT_VALID)
        assert answer.field("Text") == ""
        assert await state_of(server.url) == State.IDLE
    else:
        assert (answer.field("ErrorCode"), answer.field("ErrorMessage")) == ("0", "")
        assert await state_of(server.url) == State.DESCRIBED


async def test_a_missing_argument_arrives_empty(server):
    answer = await post(server.url, call("Describe", table=LINKS.as_xml()))
    assert (answer.status, answer.field("ErrorCode"), answer.field("ErrorMessage")) == (
        200, "1", NOT_VALID)
    assert await state_of(server.url) == State.IDLE


@pytest.mark.parametrize(("request_body", "name", "fields"), [
    (call("GetState"), "ResponseState", ["ErrorCode", "ErrorMessage", "State", "Transition"]),
    (call("GetConfigIDs"), "ResponseText", ["ErrorCode", "ErrorMessage", "Text"]),
    (step("Describe"), "ResponseText", ["ErrorCode", "ErrorMessage", "Text"]),
    (call("Special", command="bogus", table=""), "ResponseText",
     ["ErrorCode", "ErrorMessage", "Text"]),
    (call("ServerExit"), "Response", ["ErrorCode", "ErrorMessage"]),
], ids=["GetState", "GetConfigIDs", "Describe", "Special", "ServerExit"])
async def test_answer_children_are_qualified_only_by_gsoap_2_7(server, request_body, name,
                                                               fields):
    answer = await post(server.url, request_body)
    assert (answer.status, answer.element.tag) == (200, f"{{{ECC}}}{name}")
    namespace = None if server.unqualified else ECC
    assert answer.children() == [(namespace, field) for field in fields]


@pytest.mark.parametrize("request_body", [
    call("GetState"), call("GetConfigIDs"), step("Describe"), call("Describe"),
    step("Configure"), call("Special", command="connect", table=""),
    call("Special", command="bogus", table=""), prefixed("Describe", configID="x", table=""),
    call("Launch"), call("ServerExit"),
], ids=["GetState", "GetConfigIDs", "Describe", "Describe-empty", "Configure-ignored",
        "Special-known", "Special-unknown", "Describe-prefixed", "unknown-operation",
        "ServerExit"])
async def test_the_emulator_in_2_8_mode_answers_as_gsoap_does(pair, request_body):
    gsoap, emulator = [await post(server.url, request_body) for server in pair]
    assert emulator.status == gsoap.status
    assert emulator.names() == gsoap.names()
    assert emulator.children() == gsoap.children()
    if gsoap.status != 200:  # a SOAP Fault
        assert emulator.field("faultcode") == gsoap.field("faultcode") == "SOAP-ENV:Client"
        return
    # Texts differ (the emulator reads real configuration files); the rest must not.
    same = [name for _, name in gsoap.children() if name != "Text"]
    assert {name: emulator.field(name) for name in same} == {
        name: gsoap.field(name) for name in same}


@pytest.mark.parametrize("request_body", [call("GetState"), call("Launch")],
                         ids=["answer", "fault"])
async def test_the_emulator_answers_with_gsoaps_http_head(pair, request_body):
    heads = [[(name, value) for name, value in (await post(s.url, request_body)).headers.items()
              if name != "content-length"] for s in pair]
    assert heads[1] == heads[0]
    assert ("connection", "close") in heads[0]


async def test_a_get_is_refused_with_a_fault(server):
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(server.url)
    answer = Answer(reply.status_code, reply.headers, reply.content,
                    etree.fromstring(reply.content))
    assert (answer.status, answer.field("faultstring")) == (
        405, "HTTP GET method not implemented")


async def test_what_is_not_http_is_closed_unanswered(server):
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    writer.write_eof()  # else gSOAP waits for more until its receive timeout
    async with asyncio.timeout(20):
        assert await reader.read() == b""
    writer.close()


async def test_empty_strings_are_read_as_empty(server):
    answer = await post(server.url, call("Special", command="connect", table=""))
    assert (answer.field("ErrorCode"), answer.field("ErrorMessage"), answer.field("Text")) == (
        "0", "", "")
    if server.kind == "gsoap":  # gSOAP 2.8 writes them self-closed
        assert b"<ErrorMessage/><Text/>" in answer.raw
    async with EccClient(server.url, state_timeout=5, transition_timeout=10) as ecc:
        reply = await ecc.special("connect")
        assert (reply.error_code, reply.error_message, reply.text) == (0, "", "")
        state = await ecc.get_state()
        assert (state.state, state.error_code, state.error_message) == (State.IDLE, 0, "")


@pytest.mark.parametrize("operation", ["Prepare", "Configure", "Start", "Stop", "Pause",
                                       "Resume", "Breakup", "Undo"])
async def test_a_transition_not_allowed_from_idle_is_ignored(server, operation):
    answer = await post(server.url, step(operation))
    assert (answer.status, answer.field("ErrorCode"), answer.field("ErrorMessage")) == (
        200, "0", "")
    assert await state_of(server.url) == State.IDLE


async def test_a_transition_not_allowed_midway_is_ignored(server):
    await walk(server.url, "Describe", "Prepare", "Configure")
    for operation in ("Describe", "Prepare", "Configure", "Undo", "Pause", "Resume", "Stop"):
        answer = await post(server.url, step(operation))
        assert (answer.field("ErrorCode"), answer.field("ErrorMessage")) == ("0", ""), operation
        assert await state_of(server.url) == State.READY, operation


@pytest.mark.parametrize("request_body", [
    call("GetState"), step("Describe"), call("Special", command="bogus", table=""),
    call("Launch"), call("ServerExit"),
], ids=["GetState", "Describe", "Special-unknown", "Fault", "ServerExit"])
async def test_every_answer_closes_the_connection(server, request_body):
    answer = await post(server.url, request_body)
    assert answer.headers.get("Connection", "").lower() == "close"
    assert answer.headers["Content-Type"].startswith("text/xml")


async def test_a_whole_cycle_through_the_client(server):
    steps = [("Describe", State.DESCRIBED), ("Prepare", State.PREPARED),
             ("Configure", State.READY), ("Start", State.RUNNING), ("Pause", State.PAUSED),
             ("Resume", State.RUNNING), ("Stop", State.READY), ("Start", State.RUNNING),
             ("Breakup", State.PREPARED), ("Undo", State.DESCRIBED), ("Undo", State.IDLE)]
    async with EccClient(server.url, state_timeout=5, transition_timeout=10) as ecc:
        assert CONFIG in await ecc.get_config_ids()
        for operation, target in steps:
            reply = await ecc.transition(Operation(operation), CONFIG, LINKS)
            assert (reply.error_code, reply.error_message) == (0, ""), operation
            if operation == "Describe":
                assert 'id="CoBo[0]"' in reply.text
            if operation == "Configure":
                assert reply.text.startswith("<DataLinkSet>")
                assert "<ConfigSet" in reply.text
            state = await ecc.get_state()
            assert (state.state, state.transitioning) == (target, False), operation


async def test_special_refuses_an_unknown_command(server):
    async with EccClient(server.url, state_timeout=5, transition_timeout=10) as ecc:
        for command in ("asad-inject", "connect", "write", "writereg"):
            assert (await ecc.special(command)).error_code == 0
        with pytest.raises(EccRefused) as refused:
            await ecc.special("bogus")
    assert (refused.value.code, refused.value.message) == (
        1, "Special command 'bogus' is unknown.")


@pytest.mark.parametrize("last", ["Start", "Pause"])
async def test_breakup_from_running_or_paused_lands_prepared(server, last):
    await walk(server.url, "Describe", "Prepare", "Configure", "Start",
               *(["Pause"] if last == "Pause" else []))
    assert await state_of(server.url) == (State.RUNNING if last == "Start" else State.PAUSED)
    await walk(server.url, "Breakup")
    assert await state_of(server.url) == State.PREPARED


async def test_server_exit_answers_then_the_server_goes(server):
    async with EccClient(server.url, state_timeout=5) as ecc:
        await ecc.server_exit()
    if server.kind == "gsoap":
        assert server.handle.wait_exit() == 0
    else:
        async with asyncio.timeout(5):
            await server.handle.stopped.wait()
        assert server.handle.stop_reason == "exit"
    with pytest.raises(httpx.ConnectError):
        await post(server.url, call("GetState"))
