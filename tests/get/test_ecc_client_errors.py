"""Every error path of the ECC client, against real loopback servers that misbehave.

The emulator answers correctly; these peers answer what no healthy server would
(silence, a dropped connection, broken SOAP), over real sockets.
"""

import asyncio
import time

import pytest

from attpcdaq.get import (
    EccBusy,
    EccClient,
    EccError,
    EccHttpError,
    EccProtocolError,
    EccRefused,
    EccSoapFault,
    EccTimeout,
    EccUnreachable,
    Operation,
)

ENVELOPE = ('<?xml version="1.0"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:z="urn:ecc"><S:Body>{}</S:Body></S:Envelope>')


def http(body: str, status: str = "200 OK") -> bytes:
    data = body.encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data


def answering(body: str, status: str = "200 OK"):
    async def behaviour(writer):
        writer.write(http(body, status))
        await writer.drain()
    return behaviour


async def test_unreachable_server_is_named():
    # Bind a port, then close it: nothing listens there.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    url = f"http://127.0.0.1:{port}/"
    async with EccClient(url) as ecc:
        with pytest.raises(EccUnreachable, match=f"ECC server {url}: GetState: cannot connect"):
            await ecc.get_state()


async def test_server_that_never_answers_times_out_on_time(peer):
    async def silent(writer):
        await asyncio.sleep(3600)
    url = await peer(silent)
    async with EccClient(url, state_timeout=0.3, transition_timeout=0.6) as ecc:
        started = time.monotonic()
        with pytest.raises(EccTimeout, match=r"GetState: no answer within 0\.3 s"):
            await ecc.get_state()
        with pytest.raises(EccTimeout, match=r"Describe: no answer within 0\.6 s"):
            await ecc.transition(Operation.DESCRIBE, None, None)
        # Generous bound: the point is that it did not hang, not how fast it was.
        assert time.monotonic() - started < 10


async def test_server_that_closes_the_connection(peer):
    async def rude(writer):
        writer.transport.abort()
    url = await peer(rude)
    async with EccClient(url) as ecc:
        with pytest.raises(EccUnreachable, match="connection closed without an answer"):
            await ecc.get_state()


async def test_http_error_status(peer):
    url = await peer(answering("<html>gone</html>", "404 Not Found"))
    async with EccClient(url) as ecc:
        with pytest.raises(EccHttpError, match="HTTP status 404") as info:
            await ecc.get_state()
    assert info.value.status == 404


async def test_soap_fault(peer):
    fault = ENVELOPE.format("<S:Fault><faultcode>S:Client</faultcode>"
                            "<faultstring>Validation constraint violation</faultstring></S:Fault>")
    url = await peer(answering(fault, "500 Internal Server Error"))
    async with EccClient(url) as ecc:
        with pytest.raises(EccSoapFault, match="Validation constraint violation"):
            await ecc.get_state()


@pytest.mark.parametrize("body", [
    "this is not xml",
    ENVELOPE.format("<z:ResponseState><z:ErrorCode>0</z:ErrorCode></z:ResponseState>"),
    ENVELOPE.format("<z:ResponseState><z:ErrorCode>0</z:ErrorCode><z:ErrorMessage/>"
                    "<z:State>42</z:State><z:Transition>0</z:Transition></z:ResponseState>"),
    ENVELOPE.format("<z:ResponseState><z:ErrorCode>zero</z:ErrorCode><z:ErrorMessage/>"
                    "<z:State>1</z:State><z:Transition>0</z:Transition></z:ResponseState>"),
    ENVELOPE.format(""),
])
async def test_malformed_answers(peer, body):
    url = await peer(answering(body))
    async with EccClient(url) as ecc:
        with pytest.raises(EccProtocolError, match=f"ECC server {url}: GetState"):
            await ecc.get_state()


async def test_malformed_config_list(peer):
    answer = ENVELOPE.format("<z:ResponseText><z:ErrorCode>0</z:ErrorCode><z:ErrorMessage/>"
                             "<z:Text>&lt;ConfigIdSet&gt;&lt;ConfigId&gt;</z:Text></z:ResponseText>")
    url = await peer(answering(answer))
    async with EccClient(url) as ecc:
        with pytest.raises(EccProtocolError, match="GetConfigIDs: config list: malformed XML"):
            await ecc.get_config_ids()


async def test_any_namespace_prefix_is_accepted(peer):
    answer = ('<a:Envelope xmlns:a="http://schemas.xmlsoap.org/soap/envelope/"><a:Body>'
              '<ns7:ResponseState xmlns:ns7="urn:ecc"><ns7:ErrorCode>0</ns7:ErrorCode>'
              '<ns7:ErrorMessage>The ECC state machine is busy!</ns7:ErrorMessage>'
              '<ns7:State>3</ns7:State><ns7:Transition>3</ns7:Transition></ns7:ResponseState>'
              '</a:Body></a:Envelope>')
    url = await peer(answering(answer))
    async with EccClient(url) as ecc:
        reply = await ecc.get_state()
    assert (reply.state.label, reply.transition.label, reply.transitioning) == (
        "Prepared", "Configuring", True)


@pytest.mark.parametrize(("message", "kind"), [
    ("The ECC state machine is busy!", EccBusy),
    ("describe-cobo9.xcfg: no such file", EccRefused),
])
async def test_error_code_becomes_refused_with_the_servers_message(peer, message, kind):
    answer = ENVELOPE.format(f"<z:ResponseText><z:ErrorCode>1</z:ErrorCode>"
                             f"<z:ErrorMessage>{message}</z:ErrorMessage><z:Text/></z:ResponseText>")
    url = await peer(answering(answer))
    async with EccClient(url) as ecc:
        with pytest.raises(kind) as info:
            await ecc.transition(Operation.DESCRIBE, None, None)
    assert (info.value.code, info.value.message, info.value.operation) == (1, message, "Describe")
    assert isinstance(info.value, EccError)
