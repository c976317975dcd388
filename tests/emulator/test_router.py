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
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from attpcdaq.emulator.boards import (
    BoardStreamer,
    RouterUnreachable,
    check_routers_reachable,
    cobo_index,
)
from attpcdaq.emulator.router import MUTANT_FRAME_TYPE, DataRouterEmulator, main
from attpcdaq.get import DataLink, DataLinkSet, Frame, Item, encode_frame, iter_frames, make_event
from attpcdaq.remote.names import GrawName, parse_graw_name

#: The current routers' names, exactly (the run control's check accepts older ones too).
NAME = re.compile(r"(?:CoBo\d+_AsAd[0-3]|MuTanT)_\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}_\d{4}"
                  r"\.graw")
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


def read_files(data_dir) -> dict[GrawName, list[Frame]]:
    """Map the name of every .graw file to its frames; check the names are the current form."""
    files = {}
    for path in data_dir.iterdir():
        if path.is_dir():
            continue
        assert NAME.fullmatch(path.name), path.name
        files[parse_graw_name(path.name)] = list(iter_frames(path))
    return files


def frame(cobo: int, asad: int, event: int) -> bytes:
    """The bytes of a small frame (one item) of ``cobo``, ``asad`` and ``event``."""
    return encode_frame(Frame(event, cobo, asad, items=[Item(0, 1, 2, 3)]))


def mutant_frame(event: int) -> bytes:
    """A frame with the MuTAnT's frameType (the router reads only its header)."""
    data = bytearray(frame(0, 0, event))
    data[5:7] = MUTANT_FRAME_TYPE.to_bytes(2, "big")
    return bytes(data)


def sets(files: dict[GrawName, list[Frame]], cobo: int, asad: int) -> list[list[GrawName]]:
    """The file sets of (cobo, asad), oldest first, each set's names in order."""
    found = defaultdict(list)
    for name in files:
        if (name.cobo, name.asad) == (cobo, asad):
            found[name.stamp].append(name)
    return [sorted(found[stamp], key=lambda n: n.number) for stamp in sorted(found)]


async def send(router: DataRouterEmulator, *frames: bytes) -> None:
    """Send ``frames`` on a connection of their own, close it, wait until all are written."""
    _, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(b"".join(frames))
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await router.wait_idle()


async def test_two_cobos_write_one_complete_file_per_asad(router, data_dir):
    links = table(router.port, "CoBo[0]", "CoBo[1]", "Mutant[master]")
    streamer = BoardStreamer(links, rate_hz=RATE, hits_per_asad=3)
    await stream(streamer, router, events=4)

    files = read_files(data_dir)
    assert len(files) == 8 and {name.number for name in files} == {0}
    sent = {cobo_index(link.sender): n for link, n in streamer.events_sent.items()}
    seen = defaultdict(set)
    for name, frames in files.items():
        cobo, asad = name.cobo, name.asad
        seen[asad].add(cobo)
        assert {(f.cobo_idx, f.asad_idx) for f in frames} == {(cobo, asad)}
        assert [f.event_idx for f in frames] == list(range(sent[cobo]))
        assert [f.event_time for f in frames] == sorted({f.event_time for f in frames})
        assert frames[2] == make_event(cobo, asad, 2, 3, event_time=frames[2].event_time)
    assert seen == {asad: {0, 1} for asad in range(4)}
    assert router.stats.frames == 4 * sum(sent.values())
    assert router.stats.bytes == sum(p.stat().st_size for p in data_dir.iterdir())
    assert router.stats.connections == 2 and router.stats.rejected == 0


async def test_names_are_the_current_form_for_cobos_and_the_mutant(router, data_dir):
    before = datetime.now().replace(microsecond=0)
    await send(router, frame(12, 3, 0), mutant_frame(0), frame(12, 3, 1), mutant_frame(1))
    after = datetime.now() + timedelta(milliseconds=1)

    names = sorted(p.name for p in data_dir.iterdir())
    assert [re.sub(r"_\d{4}-[-T:.\d]+_", "_<time>_", n) for n in names] == [
        "CoBo12_AsAd3_<time>_0000.graw", "MuTanT_<time>_0000.graw"]
    for name in names:
        stamp = datetime.strptime(parse_graw_name(name).stamp, "%Y-%m-%dT%H:%M:%S.%f")
        assert before <= stamp <= after  # local time, to the millisecond
    assert [f.event_idx for f in iter_frames(data_dir / names[0])] == [0, 1]
    assert (data_dir / names[1]).read_bytes() == mutant_frame(0) + mutant_frame(1)
    assert router.stats.files == 2 and router.stats.frames == 4


async def test_a_new_file_set_when_the_counter_goes_back_not_per_connection(router, data_dir):
    await send(router, *(frame(0, a, e) for e in range(3) for a in (0, 1)))
    first = set(read_files(data_dir))
    assert len(first) == 2
    # Another connection (a board that reconnected) counting on: the same files.
    await send(router, *(frame(0, a, e) for e in (3, 4) for a in (0, 1)))
    files = read_files(data_dir)
    assert set(files) == first
    assert all([f.event_idx for f in frames] == list(range(5)) for frames in files.values())

    # The counter goes back (a new run whose counter restarted): a new set at 0000,
    # and again when an eventIdx is not above the one before (equal counts as back).
    await send(router, frame(0, 0, 0), frame(0, 0, 1), frame(0, 0, 1), frame(0, 0, 2))
    files = read_files(data_dir)
    asad0 = sets(files, 0, 0)
    assert [[n.number for n in one] for one in asad0] == [[0], [0], [0]]
    assert asad0[0] == [n for n in first if n.asad == 0]
    assert [[f.event_idx for f in files[one[0]]] for one in asad0] == [
        [0, 1, 2, 3, 4], [0, 1], [1, 2]]
    assert len(sets(files, 0, 1)) == 1  # the other AsAd's counter did not go back
    assert router.stats.files == 4


@pytest.mark.parametrize("limit_frames", [2, 2.5])
async def test_a_file_rotates_after_a_frame_takes_it_past_the_limit(router, data_dir,
                                                                    limit_frames):
    size = len(frame(0, 0, 0))
    router.max_file_bytes = int(limit_frames * size)
    await send(router, *(frame(3, 1, e) for e in range(8)))

    files = read_files(data_dir)
    [names] = sets(files, 3, 1)
    # Reaching the limit is not passing it; the frame that passes it stays in the file.
    assert [n.number for n in names] == [0, 1, 2]
    assert [[f.event_idx for f in files[n]] for n in names] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert len({n.stamp for n in names}) == 1


async def test_a_file_moved_away_is_created_again_by_the_next_frame(router, data_dir):
    _, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(frame(1, 2, 0) + frame(1, 2, 1))
    await until(lambda: router.stats.frames == 2)
    [path] = data_dir.iterdir()
    run_dir = data_dir / "exp" / "run_0000"
    run_dir.mkdir(parents=True)
    path.rename(run_dir / path.name)  # what the run control's filing does
    writer.write(frame(1, 2, 2))
    await until(lambda: router.stats.frames == 3)
    writer.close()
    await router.wait_idle()

    assert [f.event_idx for f in iter_frames(run_dir / path.name)] == [0, 1]
    assert [f.event_idx for f in iter_frames(path)] == [2]  # same name, the rest
    assert router.stats.files == 1


async def test_one_connection_at_a_time_and_the_next_loses_nothing(router, data_dir):
    _, first = await asyncio.open_connection("127.0.0.1", router.port)
    first.write(frame(0, 0, 0) + frame(0, 0, 1))
    await until(lambda: router.stats.frames == 2)
    _, second = await asyncio.open_connection("127.0.0.1", router.port)
    second.write(b"".join(frame(1, 0, e) for e in range(50)))
    await second.drain()
    await until(lambda: router.waiting_connections == 1)
    first.write(frame(0, 0, 2))  # sent after the second's frames, written before them
    await until(lambda: router.stats.frames == 3)
    assert [n.cobo for n in read_files(data_dir)] == [0]
    assert router.active_connections == 2
    second.close()  # all sent, closed while waiting: still read whole
    first.close()
    await router.wait_idle()

    files = read_files(data_dir)
    assert sorted((n.cobo, [f.event_idx for f in frames]) for n, frames in files.items()) == [
        (0, [0, 1, 2]), (1, list(range(50)))]
    assert [parse_graw_name(p.name).cobo for p in router.files] == [0, 1]
    assert router.stats.connections == 2 and router.stats.rejected == 0


async def test_a_connection_cut_inside_a_frame_loses_only_that_frame(router, data_dir, caplog):
    _, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(frame(2, 3, 0) + frame(2, 3, 1) + frame(2, 3, 2)[:100])
    await writer.drain()
    writer.close()
    await router.wait_idle()
    assert router.stats.rejected == 1 and router.stats.frames == 2
    assert "the stream ended 100 bytes into a 320-byte frame" in caplog.text
    # The board connects again and sends on: the same file, the partial frame lost.
    await send(router, frame(2, 3, 2), frame(2, 3, 3))
    [(name, frames)] = read_files(data_dir).items()
    assert (name.cobo, name.asad, name.number) == (2, 3, 0)
    assert [f.event_idx for f in frames] == [0, 1, 2, 3]


GOOD = encode_frame(Frame(0, 7, 1, items=[Item(0, 1, 2, 3)]))  # 320 bytes


@pytest.mark.parametrize(("bad", "error"), [
    (b"\x86" + GOOD[1:], "byte 320: bad metaType 0x86"),
    (GOOD[:256] + (68 << 23).to_bytes(4, "big") + GOOD[260:], "byte 576: item 0 is malformed"),
    (GOOD[:1] + b"\xff\xff\xff" + GOOD[4:], "byte 321: frameSize says 1073741760 bytes"),
])
async def test_a_malformed_stream_is_cut_and_the_next_is_served(router, data_dir, caplog, bad,
                                                                error):
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    peer = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
    writer.write(GOOD + bad)
    streamer = BoardStreamer(table(router.port, "CoBo[0]"), RATE, 1)
    await streamer.start()  # its connection waits for the first
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # the router hung up
    writer.close()
    await until(lambda: router.stats.frames >= 1 + 4 * 2)  # the board's events written
    await streamer.stop()
    await router.wait_idle()

    assert router.stats.rejected == 1 and streamer.failures == {}
    message = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert peer in message and error in message
    files = read_files(data_dir)
    assert len(files) == 5
    assert [f for frames in files.values() for f in frames if f.cobo_idx == 7] == \
        [Frame(0, 7, 1, items=[Item(0, 1, 2, 3)])]


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
        "--max-file-bytes", "1000", stdout=asyncio.subprocess.PIPE)
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
        await until(lambda: min(streamer.events_sent.values()) >= 6)
        process.send_signal(signal.SIGTERM)  # while the board still sends
        async with asyncio.timeout(10):
            assert await process.wait() == 0
        await streamer.stop()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    files = read_files(data_dir)
    for asad in range(4):
        [names] = sets(files, 5, asad)
        # 320-byte frames: the fourth takes a file past 1000 bytes, the fifth starts 0001.
        assert len(names) >= 2 and [n.number for n in names] == list(range(len(names)))
        assert all(len(files[n]) == 4 for n in names[:-1])
        events = [f.event_idx for n in names for f in files[n]]
        assert events == list(range(len(events))) and len(events) >= 6
