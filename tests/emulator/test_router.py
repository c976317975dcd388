"""The dataRouter emulator and the streaming boards, over real loopback sockets."""

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from attpcdaq.emulator.boards import (
    BoardStreamer,
    RouterUnreachable,
    check_routers_reachable,
    cobo_index,
)
from attpcdaq.emulator.router import DataRouterEmulator, main
from attpcdaq.get import DataLink, DataLinkSet, Frame, Item, encode_frame, iter_frames, make_event

NAME = re.compile(r"CoBo_AsAd([0-3])_(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})_(\d{4})\.graw")
RATE = 40  # events per second: a few per test, on 2 shared cores


@pytest.fixture
def data_dir(tmp_path):
    """The router's working directory."""
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture
async def router(data_dir):
    """A router emulator on a free loopback port, writing into a fresh directory."""
    async with DataRouterEmulator("127.0.0.1", 0, data_dir) as server:
        yield server


def table(port: int, *senders: str) -> DataLinkSet:
    """Data links of ``senders`` to one router on ``port``."""
    return DataLinkSet(tuple(DataLink(s, "DataRouter0", "127.0.0.1", port) for s in senders))


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait, polling, until ``predicate()`` holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still not true after {timeout} s: {predicate}")


async def stream(streamer: BoardStreamer, router: DataRouterEmulator, events: int) -> None:
    """Run ``streamer`` until every link has sent ``events`` events, stop, wait for the files."""
    await streamer.start()
    await until(lambda: min(streamer.events_sent.values()) >= events)
    await streamer.stop()
    await router.wait_idle()
    assert streamer.failures == {}


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def comm(pid: int) -> str:
    """The kernel's name of process ``pid``."""
    return Path(f"/proc/{pid}/comm").read_text().rstrip("\n")


def read_files(data_dir):
    """Map (asad, stamp, counter) of every .graw file to its frames; check the names."""
    files = {}
    for path in data_dir.iterdir():
        match = NAME.fullmatch(path.name)
        assert match, path.name
        files[int(match[1]), match[2], int(match[3])] = list(iter_frames(path))
    return files


async def test_two_cobos_write_one_complete_file_per_asad(router, data_dir):
    links = table(router.port, "CoBo[0]", "CoBo[1]", "Mutant[master]")
    streamer = BoardStreamer(links, rate_hz=RATE, hits_per_asad=3)
    await stream(streamer, router, events=4)

    files = read_files(data_dir)
    assert len(files) == 8 and {counter for _, _, counter in files} == {0}
    sent = {cobo_index(link.sender): n for link, n in streamer.events_sent.items()}
    seen = defaultdict(set)
    for (asad, _, _), frames in files.items():
        cobo = frames[0].cobo_idx
        seen[asad].add(cobo)
        assert {(f.cobo_idx, f.asad_idx) for f in frames} == {(cobo, asad)}
        assert [f.event_idx for f in frames] == list(range(sent[cobo]))
        assert [f.event_time for f in frames] == sorted({f.event_time for f in frames})
        assert frames[2] == make_event(cobo, asad, 2, 3, event_time=frames[2].event_time)
    assert seen == {asad: {0, 1} for asad in range(4)}
    assert router.stats.frames == 4 * sum(sent.values())
    assert router.stats.bytes == sum(p.stat().st_size for p in data_dir.iterdir())
    assert router.stats.connections == 2 and router.stats.rejected == 0


async def test_a_full_file_continues_in_the_next_one(router, data_dir):
    frame_bytes = len(encode_frame(make_event(0, 0, 0, 2)))
    router.max_file_bytes = 3 * frame_bytes + frame_bytes // 2
    await stream(BoardStreamer(table(router.port, "CoBo[3]"), RATE, 2), router, events=7)

    files = read_files(data_dir)
    sent = router.stats.frames // 4
    for asad in range(4):
        mine = sorted(key for key in files if key[0] == asad)
        assert [counter for _, _, counter in mine] == list(range(-(-sent // 3)))
        assert len({stamp for _, stamp, _ in mine}) == 1
        assert [len(files[key]) for key in mine[:-1]] == [3] * (len(mine) - 1)
        events = [f.event_idx for key in mine for f in files[key]]
        assert events == list(range(sent))
    assert all(p.stat().st_size == 3 * frame_bytes for p in data_dir.iterdir()
               if p.name.endswith("_0000.graw"))


GOOD = encode_frame(Frame(0, 7, 1, items=[Item(0, 1, 2, 3)]))  # 320 bytes


@pytest.mark.parametrize(("bad", "error"), [
    (b"\x86" + GOOD[1:], "byte 320: bad metaType 0x86"),
    (GOOD[:256] + (68 << 23).to_bytes(4, "big") + GOOD[260:], "byte 576: item 0 is malformed"),
    (GOOD[:1] + b"\xff\xff\xff" + GOOD[4:], "byte 321: frameSize says 1073741760 bytes"),
])
async def test_a_malformed_stream_is_cut_and_the_others_go_on(router, data_dir, caplog, bad,
                                                              error):
    streamer = BoardStreamer(table(router.port, "CoBo[0]"), RATE, 1)
    await streamer.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    peer = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
    writer.write(GOOD + bad)
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # the router hung up
    writer.close()
    before = min(streamer.events_sent.values())
    await until(lambda: min(streamer.events_sent.values()) >= before + 2)
    await streamer.stop()
    await router.wait_idle()

    assert router.stats.rejected == 1 and streamer.failures == {}
    message = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert peer in message and error in message
    files = read_files(data_dir)
    assert len(files) == 5
    assert [f for frames in files.values() for f in frames if f.cobo_idx == 7] == \
        [Frame(0, 7, 1, items=[Item(0, 1, 2, 3)])]


async def test_a_stream_cut_inside_a_frame_keeps_the_frames_before(router, data_dir, caplog):
    good = encode_frame(Frame(4, 2, 3))
    _, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(good * 2 + good[:100])
    await writer.drain()
    writer.close()
    await router.wait_idle()
    assert router.stats.rejected == 1 and router.stats.frames == 2
    assert "the stream ended 100 bytes into a 256-byte frame" in caplog.text
    [(_, frames)] = read_files(data_dir).items()
    assert frames == [Frame(4, 2, 3)] * 2


async def test_unreachable_routers_are_named(router):
    good = DataLink("CoBo[0]", "DataRouter0", "127.0.0.1", router.port)
    bad = DataLink("CoBo[1]", "DataRouter9", "127.0.0.1", closed_port())
    await check_routers_reachable(DataLinkSet((good,)), timeout=2)
    with pytest.raises(RouterUnreachable, match=rf"data router DataRouter9 at 127.0.0.1:"
                       rf"{bad.router_port} \(for CoBo\[1\]\) cannot be reached") as caught:
        await check_routers_reachable(DataLinkSet((good, bad)), timeout=2)
    assert caught.value.link == bad

    streamer = BoardStreamer(DataLinkSet((good, bad)), RATE, 1)
    with pytest.raises(RouterUnreachable, match="DataRouter9"):
        await streamer.start()
    assert not streamer.running
    await router.wait_idle()
    assert router.stats.connections >= 2 and router.stats.files == 0


def test_senders_must_be_cobos_or_the_mutant():
    assert [cobo_index(s) for s in ("CoBo[0]", "CoBo[12]", "Mutant[master]")] == [0, 12, None]
    with pytest.raises(ValueError, match="unknown data sender 'AsAd\\[0\\]'"):
        BoardStreamer(table(1, "CoBo[0]", "AsAd[0]"), RATE, 1)


def test_a_bad_data_dir_exits_2(tmp_path, capsys):
    assert main(["--port", "0", "--data-dir", str(tmp_path / "missing")]) == 2
    assert "data directory" in capsys.readouterr().err
    assert comm(os.getpid()) != "dataRouter"


async def test_the_cli_listens_is_found_as_datarouter_and_exits_cleanly(data_dir):
    code = "import sys; from attpcdaq.emulator.router import main; sys.exit(main(sys.argv[1:]))"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--port", "0", "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        port = int(re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)[1])
        assert comm(process.pid) == "dataRouter"  # what pgrep -x matches
        if shutil.which("pgrep"):
            found = await asyncio.create_subprocess_exec(
                "pgrep", "-x", "dataRouter", stdout=asyncio.subprocess.PIPE)
            assert str(process.pid) in (await found.communicate())[0].decode().split()
        streamer = BoardStreamer(table(port, "CoBo[5]"), RATE, 2)
        await streamer.start()
        await until(lambda: min(streamer.events_sent.values()) >= 3)
        process.send_signal(signal.SIGTERM)  # while the board still sends
        async with asyncio.timeout(10):
            assert await process.wait() == 0
        await streamer.stop()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    files = read_files(data_dir)
    assert len(files) == 4
    assert all(len(frames) >= 3 for frames in files.values())
