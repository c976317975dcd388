"""The ECC client's HTTP layer: concurrency, connections, what goes on the wire.

Against the emulator and against loopback peers that count connections or answer
what no healthy server would.
"""

import asyncio
import contextlib
import os
import resource
import socket

import pytest

from attpcdaq.emulator import EccEmulatorGroup
from attpcdaq.emulator.misbehaving import read_request
from attpcdaq.get import (
    ConfigId,
    EccClient,
    EccHttpError,
    EccProtocolError,
    EccUnreachable,
    Operation,
    State,
    http,
)

ANSWER = (b'<?xml version="1.0"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" '
          b'xmlns:z="urn:ecc"><S:Body><z:ResponseState><z:ErrorCode>0</z:ErrorCode>'
          b"<z:ErrorMessage/><z:State>1</z:State><z:Transition>0</z:Transition></z:ResponseState>"
          b"</S:Body></S:Envelope>")
TEXT_ANSWER = ANSWER.replace(
    b"<z:State>1</z:State><z:Transition>0</z:Transition>", b"<z:Text>pong</z:Text>").replace(
    b"ResponseState", b"ResponseText")


def head(status: str = "200 OK", length: int = len(ANSWER), extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait, polling, until ``predicate()`` holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still not true after {timeout} s: {predicate}")


def keep_alive(connections: list, requests: list | None = None, answer: bytes = ANSWER):
    """A server answering every request on a connection until the client closes it."""
    async def handle(reader, writer):
        connections.append(writer)
        while True:
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                return  # the client closed the connection
            if requests is not None:
                requests.append(request)
            writer.write(head(length=len(answer)) + answer)
            await writer.drain()
    return handle


async def test_get_state_answers_during_a_transition_on_the_same_client():
    # A transition holds its connection until the server is done: GetState must
    # still go through, on another connection of the same client.
    async with EccEmulatorGroup(count=1, transition_seconds=2.0) as group, \
            EccClient(group.servers[0].url, state_timeout=1, transition_timeout=10) as ecc:
        describe = asyncio.create_task(ecc.transition(
            Operation.DESCRIBE, ConfigId("cobo0", "experiment", "experiment"), None))
        await until(lambda: group.servers[0].ecc.running)
        replies = [await ecc.get_state() for _ in range(3)]
        assert not describe.done()
        assert all(r.transitioning and r.state == State.IDLE for r in replies)
        assert (await describe).error_code == 0
        assert (await ecc.get_state()).state == State.DESCRIBED


async def test_concurrent_calls_each_get_a_connection(serve):
    # No pool limit: more calls than a pool's usual limit (100) all reach the
    # server at once, none waiting for another's connection.
    count, arrived, connections = 120, [], []
    all_arrived = asyncio.Event()

    async def handle(reader, writer):
        connections.append(writer)
        await read_request(reader)
        arrived.append(writer)
        if len(arrived) == count:
            all_arrived.set()
        async with asyncio.timeout(10):
            await all_arrived.wait()
        writer.write(head() + ANSWER)
        await writer.drain()

    url = await serve(handle)
    async with EccClient(url, state_timeout=15) as ecc:
        replies = await asyncio.gather(*(ecc.get_state() for _ in range(count)))
    assert len(replies) == count and len(connections) == count


async def test_each_call_has_a_connection_of_its_own_and_aclose_ends_the_client(serve):
    # getEccSoapServer closes every connection after its answer: none is kept for later.
    connections, requests = [], []
    url = await serve(keep_alive(connections, requests))
    ecc = EccClient(url)
    for _ in range(5):
        assert (await ecc.get_state()).state == State.IDLE
    assert len(connections) == 5 and len(requests) == 5
    await until(lambda: all(c.is_closing() for c in connections))
    await ecc.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await ecc.get_state()


async def test_the_request_is_soap_over_http_post(serve):
    connections, requests = [], []
    url = await serve(keep_alive(connections, requests, TEXT_ANSWER))
    async with EccClient(url) as ecc:
        assert (await ecc.special("ping", "<table/>")).text == "pong"
    request_head, body = requests[0]
    lines = request_head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert lines[0] == "POST / HTTP/1.1"
    assert headers["content-type"] == "text/xml; charset=utf-8"
    assert headers["soapaction"] == '""'
    assert headers["content-length"] == str(len(body))
    # The form every gSOAP generation reads: default namespace, unprefixed children.
    assert (b'<Special xmlns="urn:ecc"><command>ping</command><table>&lt;table/&gt;</table>'
            b"</Special>") in body
    assert b"ns0:" not in body


def test_a_client_made_outside_the_event_loop_works_inside_it():
    # Nothing of the client is bound to a loop before its first call.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    ecc = EccClient(f"http://127.0.0.1:{listener.getsockname()[1]}/")

    async def main():
        server = await asyncio.start_server(keep_alive([]), sock=listener)
        async with server, ecc:
            return await ecc.get_state()

    assert asyncio.run(main()).state == State.IDLE


async def test_a_redirect_is_an_http_error_not_followed(serve):
    followed = []

    async def elsewhere(reader, writer):
        followed.append(True)
        await read_request(reader)
        writer.write(head() + ANSWER)

    target = await serve(elsewhere)

    async def redirect(reader, writer):
        await read_request(reader)
        writer.write(head("302 Found", 0, f"Location: {target}\r\n"))

    url = await serve(redirect)
    async with EccClient(url) as ecc:
        with pytest.raises(EccHttpError, match="GetState: HTTP status 302") as info:
            await ecc.get_state()
    assert info.value.status == 302 and not followed


@pytest.mark.parametrize(("answer", "reason"), [
    (head(length=len(ANSWER) + 100) + ANSWER, "answer cut short"),
    (head(), "answer cut short"),
    (b"", "closed before the answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Ty", "closed amid the answer's head"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP answer: 'SSH-2.0-OpenSSH_9.6'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "badly chunked"),
])
async def test_an_answer_cut_short_or_not_http(serve, answer, reason):
    async def handle(reader, writer):
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    url = await serve(handle)
    async with EccClient(url) as ecc:
        with pytest.raises(EccUnreachable) as info:
            await ecc.get_state()
    assert info.value.detail.startswith("GetState: connection closed without an answer: ")
    assert reason in info.value.detail and "\n" not in info.value.detail


async def test_an_answer_chunked_or_ended_by_the_close_is_read(serve):
    # gSOAP may answer either way (SOAP_IO_CHUNK, or HTTP/1.0 with no length).
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                          for part in (ANSWER[:100], ANSWER[100:])) + b"0\r\n\r\n")
    until_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + ANSWER
    # "100 Continue" first (gSOAP sends it only when asked, but a proxy may), and bytes
    # after a whole answer, which are not read.
    continued = b"HTTP/1.1 100 Continue\r\n\r\n" + head() + ANSWER
    trailing = head() + ANSWER + b"\x00garbage that is not HTTP"
    for answer in (chunked, until_close, continued, trailing):
        async def handle(reader, writer, answer=answer):
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
            writer.close()

        async with EccClient(await serve(handle)) as ecc:
            assert (await ecc.get_state()).state == State.IDLE


@pytest.mark.parametrize(("extra", "reason"), [
    ("Content-Encoding: gzip\r\n", "answer in 'gzip' encoding, which was not asked for"),
    ("", f"answer larger than {len(ANSWER) - 1:,} bytes"),
    ("X-Padding: " + "x" * 300 + "\r\n", "head larger than 200 bytes"),
])
async def test_an_answer_no_ecc_server_gives_is_malformed(serve, monkeypatch, extra, reason):
    if not extra:
        monkeypatch.setattr("attpcdaq.get.http.MAX_ANSWER_BYTES", len(ANSWER) - 1)
    if extra.startswith("X-Padding"):
        monkeypatch.setattr("attpcdaq.get.http.MAX_HEAD_BYTES", 200)

    async def handle(reader, writer):
        await read_request(reader)
        writer.write(head(extra=extra) + ANSWER)
        await writer.drain()

    async with EccClient(await serve(handle)) as ecc:
        with pytest.raises(EccProtocolError) as info:
            await ecc.get_state()
    assert info.value.detail == f"GetState: malformed answer: {reason}"


async def test_a_refused_connection_says_so():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"  # bound, not listening
    try:
        async with EccClient(url) as ecc:
            with pytest.raises(EccUnreachable) as info:
                await ecc.get_state()
    finally:
        listener.close()
    assert info.value.detail == "GetState: cannot connect: Connection refused"


@pytest.mark.parametrize(("url", "detail"), [
    ("ftp://127.0.0.1:21/", "GetState: not an http:// URL"),
    ("not a url", "GetState: invalid URL"),
])
async def test_a_url_that_is_not_http(url, detail):
    async with EccClient(url) as ecc:
        with pytest.raises(EccUnreachable) as info:
            await ecc.get_state()
    assert info.value.detail == detail


async def test_an_argument_xml_cannot_carry_is_refused_before_anything_is_sent(serve):
    connections = []
    url = await serve(keep_alive(connections))
    async with EccClient(url) as ecc:
        with pytest.raises(EccProtocolError, match="Special: cannot be sent: All strings"):
            await ecc.special("write\x01", "")
        assert (await ecc.get_state()).state == State.IDLE  # the client goes on
    assert len(connections) == 1  # only the GetState's


async def test_a_request_waits_for_a_handshake_not_yet_over():
    # The request is sent in the step that connects; where the handshake is not over
    # (here: the server's accept queue is full, so its kernel drops the first SYN), it
    # waits for the socket to be writable and goes then.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    listener.setblocking(False)
    filler = socket.create_connection(listener.getsockname())  # fills the queue
    loop = asyncio.get_running_loop()
    try:
        async with EccClient(f"http://127.0.0.1:{listener.getsockname()[1]}/") as ecc:
            call = asyncio.create_task(ecc.get_state())
            await asyncio.sleep(0)  # one step: the call has connected, or tried to
            assert not call.done()
            (await loop.sock_accept(listener))[0].close()  # the filler's
            connection, _ = await loop.sock_accept(listener)  # the client's, once its SYN is back
            reader, writer = await asyncio.open_connection(sock=connection)
            request_head, _ = await read_request(reader)
            writer.write(head() + ANSWER)
            assert (await call).state == State.IDLE
            writer.close()
    finally:
        filler.close()
        listener.close()
    assert request_head.startswith(b"POST / HTTP/1.1\r\n")


async def test_a_host_name_is_looked_up_and_each_address_tried_in_turn(serve):
    connections = []
    url = await serve(keep_alive(connections))
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    async with EccClient(f"http://localhost:{port}/") as ecc:  # /etc/hosts: loopback
        assert (await ecc.get_state()).state == State.IDLE
    # A name with several addresses: the first refuses, the next answers.
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))  # bound, not listening
    loop = asyncio.get_running_loop()
    answered = loop.create_future()
    addresses = [(socket.AF_INET, refusing.getsockname()), (socket.AF_INET, ("127.0.0.1", port))]
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n<a"
    call = http._Call(loop, addresses, request, http._Exchange(answered))
    try:
        assert (await answered).content == ANSWER
    finally:
        call.close()
        refusing.close()
    assert len(connections) == 2
    # Every address refusing: the last refusal is the reason.
    answered = loop.create_future()
    http._Call(loop, addresses[:1] * 2, request, http._Exchange(answered))
    with pytest.raises(http.CannotConnect, match="Connection refused"):
        await answered


async def test_no_file_descriptor_left_is_a_failure_to_connect(serve):
    # Hundreds of servers polled: running out of descriptors must be an error that
    # names the server, not an exception that ends the caller.
    url = await serve(keep_alive([]))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers = []
    async with EccClient(url) as ecc:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd")))
                                                    + 1, hard))
        try:
            with contextlib.suppress(OSError):  # take every descriptor left
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            with pytest.raises(EccUnreachable) as info:
                await ecc.get_state()
        finally:
            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert info.value.detail == "GetState: cannot connect: Too many open files"
        assert (await ecc.get_state()).state == State.IDLE
