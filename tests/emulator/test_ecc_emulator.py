"""The emulated ECC server, driven over real loopback sockets by the project's EccClient."""

import asyncio
import re
import socket
import time

import httpx
import pytest
from lxml import etree

from attpcdaq.emulator import EccEmulatorGroup
from attpcdaq.emulator.misbehaving import read_request
from attpcdaq.get import (
    ConfigId,
    DataLink,
    DataLinkSet,
    EccBusy,
    EccClient,
    EccIgnored,
    EccRefused,
    EccTimeout,
    EccUnreachable,
    Operation,
    State,
    TransitionCode,
    parse_configure_answer,
    step_for,
)
from attpcdaq.get.exceptions import BUSY_MESSAGE

Op = Operation
COBO0 = ConfigId("cobo0", "experiment", "experiment")


def links(*senders: str) -> DataLinkSet:
    """A DataLinkSet sending each board to one local router."""
    return DataLinkSet(tuple(DataLink(sender, "DataRouter0", "127.0.0.1", 46005)
                             for sender in senders))


COBO0_LINKS = links("CoBo[0]")


def envelope(operation_xml: str) -> str:
    """A SOAP 1.1 request with ``operation_xml`` as its Body."""
    return ('<?xml version="1.0"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/'
            f'envelope/"><S:Body>{operation_xml}</S:Body></S:Envelope>')


async def wait_until(predicate, timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"still false after {timeout} s"
        await asyncio.sleep(0.005)


async def drive(client, *operations, config=COBO0, table=COBO0_LINKS):
    """Run ``operations`` in order, each with the same config and table."""
    for op in operations:
        await client.transition(op, config, table)


async def test_full_cycle_visits_every_state(client, server, seconds):
    expected = [
        (Op.DESCRIBE, State.DESCRIBED), (Op.PREPARE, State.PREPARED),
        (Op.CONFIGURE, State.READY), (Op.START, State.RUNNING), (Op.PAUSE, State.PAUSED),
        (Op.RESUME, State.RUNNING), (Op.STOP, State.READY), (Op.BREAKUP, State.PREPARED),
        (Op.UNDO, State.DESCRIBED), (Op.UNDO, State.IDLE),
    ]
    assert (await client.get_state()).state == State.IDLE
    for op, state in expected:
        started = time.monotonic()
        reply = await client.transition(op, COBO0, COBO0_LINKS)
        assert time.monotonic() - started >= seconds * 0.9, f"{op} answered before its time"
        assert reply.error_code == 0
        answer = await client.get_state()
        assert (answer.state, answer.transition, answer.error_code, answer.error_message) == (
            state, TransitionCode.NONE, 0, "")
    # What a Running server would stream with is remembered.
    assert (server.ecc.config, server.ecc.links) == (COBO0, COBO0_LINKS)


async def test_get_state_during_a_transition_answers_busy_with_the_old_state(
        client, other_client, server):
    await drive(client, Op.DESCRIBE, Op.PREPARE)
    server.ecc.durations[Op.CONFIGURE] = 0.5
    configure = asyncio.create_task(client.transition(Op.CONFIGURE, COBO0, COBO0_LINKS))
    await wait_until(lambda: server.ecc.running is not None)
    started = time.monotonic()
    busy = await other_client.get_state()
    assert time.monotonic() - started < 0.25, "GetState waited for the transition"
    assert (busy.state, busy.transition, busy.error_code, busy.error_message) == (
        State.PREPARED, TransitionCode.CONFIGURING, 0, BUSY_MESSAGE)
    await configure
    done = await other_client.get_state()
    assert (done.state, done.transition, done.error_message) == (
        State.READY, TransitionCode.NONE, "")


async def test_a_transition_asked_during_another_is_refused_at_once(
        client, other_client, server):
    server.ecc.durations[Op.DESCRIBE] = 0.5
    describe = asyncio.create_task(client.transition(Op.DESCRIBE, COBO0, COBO0_LINKS))
    await wait_until(lambda: server.ecc.running is not None)
    started = time.monotonic()
    with pytest.raises(EccBusy) as info:
        await other_client.transition(Op.UNDO, COBO0, COBO0_LINKS)
    assert time.monotonic() - started < 0.25
    assert (info.value.code, info.value.message) == (TransitionCode.RESETTING, BUSY_MESSAGE)
    assert (await describe).error_code == 0
    assert (await client.get_state()).state == State.DESCRIBED


@pytest.mark.parametrize("op", [Op.CONFIGURE, Op.START, Op.UNDO, Op.STOP, Op.BREAKUP,
                                Op.RESUME])
async def test_a_transition_not_allowed_from_the_state_is_ignored(client, server, op):
    # The real state machine drops the event: ErrorCode 0, no message, nothing moves.
    reply = await client.transition(op, COBO0, COBO0_LINKS)
    assert (reply.error_code, reply.error_message, reply.text) == (0, "", "")
    assert (await client.get_state()).state == State.IDLE
    assert server.ecc.links is None


async def test_an_ignored_describe_or_configure_answers_its_last_text(client):
    described = (await client.transition(Op.DESCRIBE, COBO0, COBO0_LINKS)).text
    assert described == '<DataSenderSet>\n\t<DataSender id="CoBo[0]" />\n</DataSenderSet>'
    assert (await client.transition(Op.DESCRIBE, COBO0, COBO0_LINKS)).text == described
    await drive(client, Op.PREPARE)
    configured = (await client.transition(Op.CONFIGURE, COBO0, COBO0_LINKS)).text
    assert (await client.transition(Op.CONFIGURE, COBO0, COBO0_LINKS)).text == configured
    assert (await client.get_state()).state == State.READY


async def test_configure_answers_its_links_and_the_text_of_every_file_used(client, config_dir):
    await drive(client, Op.DESCRIBE, Op.PREPARE)
    answer = parse_configure_answer((await client.transition(Op.CONFIGURE, COBO0,
                                                             COBO0_LINKS)).text)
    assert answer.links == COBO0_LINKS
    assert {f.filename: f.text for f in answer.files} == {
        name: (config_dir / name).read_text()
        for name in ("describe-cobo0.xcfg", "configure-experiment.xcfg")}


async def test_prepare_reads_the_configure_file_of_its_prepare_name(client, config_dir):
    await drive(client, Op.DESCRIBE)
    (config_dir / "prepare-experiment.xcfg").unlink()  # never read
    await drive(client, Op.PREPARE)
    assert (await client.get_state()).state == State.PREPARED
    await drive(client, Op.UNDO)
    with pytest.raises(EccRefused, match=r"Configuration 'configure-beamtest' does not"):
        await client.transition(Op.PREPARE, ConfigId("cobo0", "beamtest", "experiment"), None)


async def test_an_xml_file_is_read_when_no_xcfg_file_exists(client, config_dir):
    (config_dir / "describe-cobo0.xcfg").rename(config_dir / "describe-cobo0.xml")
    described = await client.transition(Op.DESCRIBE, COBO0, None)
    assert 'id="CoBo[0]"' in described.text
    assert "cobo0/experiment/experiment" in [str(c) for c in await client.get_config_ids()]


@pytest.mark.parametrize(("before", "op", "config", "missing"), [
    ((), Op.DESCRIBE, ConfigId("cobo9", "experiment", "experiment"), "describe-cobo9"),
    ((Op.DESCRIBE,), Op.PREPARE, ConfigId("cobo0", "beamtest", "experiment"),
     "configure-beamtest"),
    ((Op.DESCRIBE, Op.PREPARE), Op.CONFIGURE, ConfigId("cobo0", "experiment", "cosmics"),
     "configure-cosmics"),
])
async def test_a_missing_config_file_is_named_and_changes_nothing(
        client, server, before, op, config, missing):
    await drive(client, *before)
    state = (await client.get_state()).state
    with pytest.raises(EccRefused) as info:
        await client.transition(op, config, COBO0_LINKS)
    assert info.value.message == f"Exception: Configuration '{missing}' does not exist."
    assert info.value.code == {Op.DESCRIBE: 1, Op.PREPARE: 2, Op.CONFIGURE: 3}[op]
    assert (await client.get_state()).state == state


async def test_a_broken_describe_file_is_refused(client):
    with pytest.raises(EccRefused, match=r"describe-broken\.xcfg is not well-formed XML"):
        await client.transition(Op.DESCRIBE, ConfigId("broken", "experiment", "experiment"),
                                None)
    assert (await client.get_state()).state == State.IDLE


async def configure_raw(server, post, table: str):
    """Configure with a raw table: EccClient only sends tables DataLinkSet could build."""
    request = etree.fromstring(envelope(
        '<Configure xmlns="urn:ecc"><configID/><table/></Configure>').encode())
    request.find(".//{urn:ecc}configID").text = COBO0.as_xml()
    request.find(".//{urn:ecc}table").text = table
    return await post(server.url, etree.tostring(request))


@pytest.mark.parametrize(("table", "message"), [
    ("<DataLinkSet><DataLink>", "Exception: cannot read the data link table: DataLinkSet: "
     "malformed XML"),
    ("", r"Could not find a valid data router for data sender 'CoBo\[0\]'"),
    ("<DataLinkSet/>", r"Could not find a valid data router for data sender 'CoBo\[0\]'"),
    # Links for senders the server does not control are dropped, not refused.
    (links("CoBo[7]", "Mutant[master]").as_xml(),
     r"Could not find a valid data router for data sender 'CoBo\[0\]'"),
])
async def test_configure_fails_when_a_described_board_has_no_link(
        client, server, post, table, message):
    await drive(client, Op.DESCRIBE, Op.PREPARE)
    answer = await configure_raw(server, post, table)
    assert answer.field("ErrorCode") == "3"
    assert re.fullmatch(message + ".*", answer.field("ErrorMessage"))
    assert (await client.get_state()).state == State.PREPARED


async def test_configure_keeps_the_first_link_of_a_sender_and_drops_unknown_ones(
        client, server, post):
    first = DataLink("CoBo[0]", "DataRouter0", "127.0.0.1", 46005)
    table = DataLinkSet((DataLink("CoBo[7]", "other", "127.0.0.1", 46007), first,
                         DataLink("CoBo[0]", "second", "127.0.0.1", 46009))).as_xml()
    await drive(client, Op.DESCRIBE, Op.PREPARE)
    answer = await configure_raw(server, post, table)
    assert answer.field("ErrorCode") == "0"
    assert server.ecc.links == DataLinkSet((first,))
    assert parse_configure_answer(answer.field("Text")).links == DataLinkSet((first,))


@pytest.mark.parametrize(("config", "senders"), [
    (ConfigId("mutant", "pulser", "pulser"), ("Mutant[master]",)),
    # A describe file that names no Node does not restrict the senders.
    (ConfigId("plain", "experiment", "experiment"), ("CoBo[3]", "Mutant[master]")),
])
async def test_configure_accepts_the_described_boards(client, server, config, senders):
    await drive(client, Op.DESCRIBE, Op.PREPARE, Op.CONFIGURE, config=config,
                table=links(*senders))
    assert (await client.get_state()).state == State.READY
    assert [link.sender for link in server.ecc.links] == list(senders)


async def test_get_config_ids_lists_every_describe_by_configure_name(client, server):
    configs = await client.get_config_ids()
    # prepare = configure; prepare-* files are not configurations; byte order.
    assert [str(config) for config in configs] == [
        f"{describe}/{configure}/{configure}"
        for describe in ("broken", "cobo0", "mutant", "plain")
        for configure in ("experiment", "pulser")]
    text = server.ecc.get_config_ids().text
    assert text.startswith("<ConfigIdSet>\n\t<ConfigId>") and text.endswith("</ConfigIdSet>")


async def test_get_config_ids_reads_the_directory_afresh(client, config_dir):
    (config_dir / "configure-beamtest.xcfg").write_text("<Setup/>")
    assert "cobo0/beamtest/beamtest" in [str(c) for c in await client.get_config_ids()]


async def test_get_config_ids_of_a_missing_directory_is_an_empty_set(client, config_dir):
    for path in config_dir.iterdir():
        path.unlink()
    config_dir.rmdir()
    assert await client.get_config_ids() == []


@pytest.mark.parametrize("command", ["asad-inject", "connect", "write", "writereg"])
async def test_special_answers_nothing_for_the_commands_it_knows(client, command):
    reply = await client.special(command, table="")
    assert (reply.error_code, reply.error_message, reply.text) == (0, "", "")


async def test_special_refuses_an_unknown_command(client):
    with pytest.raises(EccRefused) as info:
        await client.special("readRegister", table="")
    assert (info.value.code, info.value.message) == (1, "Special command 'readRegister' is "
                                                        "unknown.")


async def test_server_exit_answers_then_stops_only_that_server(client, group):
    server, neighbour = group.servers[0], group.servers[1]
    await client.server_exit()
    await asyncio.wait_for(server.stopped.wait(), 5)
    assert (server.stop_reason, server.serving) == ("exit", False)
    with pytest.raises(EccUnreachable, match="cannot connect"):
        await client.get_state()
    async with EccClient(neighbour.url) as ecc:
        assert (await ecc.get_state()).state == State.IDLE


async def test_servers_of_a_group_have_independent_state_machines(group):
    clients = [EccClient(server.url) for server in group.servers]
    try:
        await clients[1].transition(Op.DESCRIBE, COBO0, None)
        states = [(await ecc.get_state()).state for ecc in clients]
    finally:
        for ecc in clients:
            await ecc.aclose()
    assert states == [State.IDLE, State.DESCRIBED, State.IDLE]
    assert len({server.port for server in group.servers}) == 3


async def test_fail_next_fails_after_its_time_then_is_spent(client, server, seconds):
    server.ecc.fail_next(Op.DESCRIBE, message="CoBo 0 does not answer")
    started = time.monotonic()
    with pytest.raises(EccRefused) as info:
        await client.transition(Op.DESCRIBE, COBO0, None)
    assert time.monotonic() - started >= seconds * 0.9
    assert (info.value.code, info.value.message) == (1, "CoBo 0 does not answer")
    assert (await client.get_state()).state == State.IDLE
    assert server.ecc.faults == {}
    await client.transition(Op.DESCRIBE, COBO0, None)
    assert (await client.get_state()).state == State.DESCRIBED


async def test_a_fault_waits_for_a_transition_that_runs(client, server):
    server.ecc.fail_next(Op.PREPARE)
    await client.transition(Op.PREPARE, COBO0, None)  # ignored from Idle: not run
    assert server.ecc.faults == {"Prepare": "fail"}


async def test_a_failed_breakup_leaves_the_board_off_and_breakup_gets_it_out(client, server):
    await drive(client, Op.DESCRIBE, Op.PREPARE, Op.CONFIGURE, Op.START)
    server.ecc.fail_next(Op.BREAKUP, "AsAd power supply fault")
    with pytest.raises(EccRefused) as info:
        await client.transition(Op.BREAKUP, COBO0, COBO0_LINKS)
    assert (info.value.code, info.value.message) == (8, "AsAd power supply fault")
    assert (await client.get_state()).state == State.OFF
    await drive(client, Op.BREAKUP)
    assert (await client.get_state()).state == State.PREPARED


async def test_breakup_from_running_or_paused_lands_prepared(client):
    for before in ((Op.START,), (Op.START, Op.PAUSE)):
        await drive(client, Op.DESCRIBE, Op.PREPARE, Op.CONFIGURE, *before, Op.BREAKUP)
        assert (await client.get_state()).state == State.PREPARED
        await drive(client, Op.UNDO, Op.UNDO)


async def test_hang_next_stays_busy_until_faults_are_cleared(client, other_client, server,
                                                               seconds):
    server.ecc.hang_next(Op.DESCRIBE)
    describe = asyncio.create_task(client.transition(Op.DESCRIBE, COBO0, None))
    await wait_until(lambda: server.ecc.running is not None)
    await asyncio.sleep(seconds * 3)  # well past the transition's normal time
    hung = await other_client.get_state()
    assert (hung.state, hung.transition, hung.error_message) == (
        State.IDLE, TransitionCode.DESCRIBING, BUSY_MESSAGE)
    assert not describe.done()
    server.ecc.clear_faults()
    with pytest.raises(EccRefused, match="hung and was released") as info:
        await asyncio.wait_for(describe, 5)
    assert info.value.code == 1
    after = await other_client.get_state()
    assert (after.state, after.transition) == (State.IDLE, TransitionCode.NONE)


async def test_crash_next_drops_every_connection_and_closes_the_port(
        client, other_client, server, group):
    await other_client.get_state()  # holds an open keep-alive connection
    server.ecc.crash_next(Op.DESCRIBE)
    with pytest.raises(EccUnreachable, match="closed without an answer"):
        await client.transition(Op.DESCRIBE, COBO0, None)
    with pytest.raises(EccUnreachable):
        await other_client.get_state()
    await asyncio.wait_for(server.stopped.wait(), 5)
    assert server.stop_reason == "crash"
    async with EccClient(server.url) as fresh:
        with pytest.raises(EccUnreachable, match="cannot connect"):
            await fresh.get_state()
    async with EccClient(group.servers[1].url) as neighbour:
        assert (await neighbour.get_state()).state == State.IDLE


async def test_crash_during_a_transition_drops_it_and_restart_comes_back_idle(
        client, other_client, server):
    server.ecc.durations[Op.DESCRIBE] = 5.0
    describe = asyncio.create_task(client.transition(Op.DESCRIBE, COBO0, None))
    await wait_until(lambda: server.ecc.running is not None)
    await server.crash()
    with pytest.raises(EccUnreachable):
        await asyncio.wait_for(describe, 5)
    await server.restart()
    answer = await other_client.get_state()
    assert (answer.state, answer.transition) == (State.IDLE, TransitionCode.NONE)


async def test_an_explicit_port_serves_consecutive_ports(config_dir):
    for _ in range(20):  # another process may take one of the ports meanwhile
        async with EccEmulatorGroup(count=1, config_dir=config_dir) as probe:
            first = probe.servers[0].port
        try:
            async with EccEmulatorGroup(count=2, port=first, config_dir=config_dir) as group:
                assert [s.port for s in group.servers] == [first, first + 1]
                assert group.servers[1].url == f"http://127.0.0.1:{first + 1}/"
                return
        except OSError:
            continue
    pytest.fail("found no two free consecutive ports")


def _blocked_pair() -> tuple[int, socket.socket]:
    """A free port P whose neighbour P+1 is held by a listening socket of ours."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        blocker = socket.socket()
        try:
            blocker.bind(("127.0.0.1", port + 1))
            blocker.listen()
            return port, blocker
        except OSError:
            blocker.close()
    pytest.fail("found no free port with a free neighbour")


async def test_a_port_in_use_is_named_and_the_group_stops_the_others(config_dir):
    port, blocker = _blocked_pair()
    group = EccEmulatorGroup(count=2, port=port, config_dir=config_dir)
    with blocker, pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port + 1}: "
                                "Address already in use"):
        await group.start()
    assert not any(server.serving for server in group.servers)
    assert group.servers[0].stopped.is_set()


async def test_a_client_that_gives_up_does_not_stop_the_transition(server, other_client):
    # The real server finishes a transition whoever still listens; the run control
    # relies on that when it times out and confirms with GetState.
    server.ecc.durations[Op.DESCRIBE] = 0.4
    async with EccClient(server.url, transition_timeout=0.1) as impatient:
        with pytest.raises(EccTimeout):
            await impatient.transition(Op.DESCRIBE, COBO0, None)
    assert (await other_client.get_state()).transition == TransitionCode.DESCRIBING
    await wait_until(lambda: server.ecc.running is None)
    assert (await other_client.get_state()).state == State.DESCRIBED


async def test_two_hundred_servers_in_one_process(config_dir, post):
    started = time.monotonic()
    async with EccEmulatorGroup(count=200, config_dir=config_dir) as group:
        startup = time.monotonic() - started
        ask = envelope('<q:GetState xmlns:q="urn:ecc"/>')
        answers = await asyncio.gather(*(post(server.url, ask) for server in group.servers))
    assert [answer.field("State") for answer in answers] == ["1"] * 200
    assert len({server.port for server in group.servers}) == 200
    assert startup < 5, f"200 servers took {startup:.1f} s to start"


@pytest.mark.parametrize("gsoap", ["2.7", "2.8"])
async def test_run_step_confirms_each_step_and_reports_an_ignored_one(config_dir, gsoap):
    async with EccEmulatorGroup(1, config_dir=config_dir, transition_seconds=0.01,
                                gsoap=gsoap) as group, EccClient(group.servers[0].url) as ecc:
        reply, state = await ecc.run_step(step_for(Op.DESCRIBE, State.IDLE), COBO0, None)
        assert state.state == State.DESCRIBED and "CoBo[0]" in reply.text
        # The engine believes Prepared; the board is Described: Configure is ignored.
        with pytest.raises(EccIgnored) as info:
            await ecc.run_step(step_for(Op.CONFIGURE, State.PREPARED), COBO0, COBO0_LINKS)
        assert info.value.detail == "ignored Configure: it is Described"
        assert info.value.state == State.DESCRIBED
        with pytest.raises(EccIgnored, match="ignored Start: it is Described"):
            await ecc.run_operation(Op.START, None, None)


async def test_run_step_judges_a_lost_answer_by_the_state(config_dir):
    """The answer of a transition that did happen is lost on the way (a proxy drops it)."""
    dropped = []
    async with EccEmulatorGroup(1, config_dir=config_dir, transition_seconds=0.05) as group, \
            httpx.AsyncClient(timeout=10) as upstream:

        async def proxy(reader, writer) -> None:
            _, body = await read_request(reader)
            answer = await upstream.post(group.servers[0].url, content=body,
                                         headers={"Content-Type": "text/xml"})
            if b"Describe" in body and not dropped:
                dropped.append(body)
                writer.transport.abort()  # done on the server; the answer never arrives
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d"
                         b"\r\nConnection: close\r\n\r\n%s"
                         % (len(answer.content), answer.content))
            await writer.drain()
            writer.close()

        listener = await asyncio.start_server(proxy, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            async with EccClient(f"http://127.0.0.1:{port}/", transition_timeout=5) as ecc:
                reply, state = await ecc.run_step(step_for(Op.DESCRIBE, State.IDLE), COBO0,
                                                  None)
                assert dropped and state.state == State.DESCRIBED and reply.error_code == 0
                with pytest.raises(EccIgnored):  # an ignored step still shows as one
                    await ecc.run_step(step_for(Op.CONFIGURE, State.PREPARED), COBO0, None)
        finally:
            listener.close()
