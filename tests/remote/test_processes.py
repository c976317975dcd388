"""process_running, processes and find_workdir against real processes, through both transports."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from attpcdaq.remote import AmbiguousProcess, UnsafeName


async def test_finds_a_running_data_router(host, spawn, tmp_path):
    proc = spawn("dataRouter", tmp_path)
    assert await host.process_running("dataRouter")
    found = await host.processes("dataRouter", workdir=str(tmp_path))
    assert [p.pid for p in found] == [proc.pid]
    assert found[0].cwd == str(tmp_path)


async def test_not_running_once_it_exits(host, spawn, tmp_path, unique_name):
    name = unique_name()
    proc = spawn(name, tmp_path)
    assert await host.process_running(name)
    proc.kill()
    proc.wait()
    assert not await host.process_running(name)


async def test_name_must_match_exactly(host, spawn, tmp_path, unique_name):
    name = unique_name()
    spawn(name, tmp_path)
    assert not await host.process_running(name[:-1])  # a prefix is not the name
    assert not await host.process_running(name[:-1] + ".")  # '.' is not a wildcard


async def test_two_routers_told_apart_by_working_directory(host, spawn, tmp_path):
    one, two = tmp_path / "router one", tmp_path / "router 'two'"
    one.mkdir()
    two.mkdir()
    first = spawn("dataRouter", one)
    second = spawn("dataRouter", two)
    assert [p.pid for p in await host.processes("dataRouter", workdir=str(one))] == [first.pid]
    assert [p.pid for p in await host.processes("dataRouter", workdir=str(two))] == [second.pid]
    assert not await host.process_running("dataRouter", workdir=str(tmp_path))


async def test_workdir_given_through_a_symlink_or_with_a_slash(host, spawn, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    spawn("dataRouter", real)
    assert await host.process_running("dataRouter", workdir=str(tmp_path / "alias"))
    assert await host.process_running("dataRouter", workdir=f"{real}/")


async def test_two_routers_told_apart_by_port(host, spawn, tmp_path):
    first = spawn("dataRouter", tmp_path, listen=True)
    second = spawn("dataRouter", tmp_path, listen=True)
    by_port = await host.processes("dataRouter", port=first.port)
    assert [p.pid for p in by_port] == [first.pid]
    assert first.port in by_port[0].ports
    assert [p.pid for p in await host.processes("dataRouter", port=second.port)] == [second.pid]


async def test_port_nobody_listens_on(host, spawn, tmp_path):
    listener = spawn("dataRouter", tmp_path, listen=True)
    assert not await host.process_running("dataRouter", port=listener.port + 1
                                          if listener.port < 65535 else 1)


async def test_find_workdir_of_a_router_by_port(host, spawn, tmp_path):
    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir()
    two.mkdir()
    first = spawn("dataRouter", one, listen=True)
    spawn("dataRouter", two, listen=True)
    assert await host.find_workdir("dataRouter", first.port) == str(one)


async def test_find_workdir_when_unique_none_or_ambiguous(host, spawn, tmp_path, unique_name):
    name = unique_name()
    assert await host.find_workdir(name) is None
    spawn(name, tmp_path)
    assert await host.find_workdir(name) == str(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    spawn(name, other)
    with pytest.raises(AmbiguousProcess, match=name) as caught:
        await host.find_workdir(name)
    assert host.name in str(caught.value)


async def test_name_longer_than_the_kernel_keeps(host, spawn, tmp_path):
    # comm keeps 15 characters: both run as "getEccSoapServe"; argv[0] tells them apart.
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.mkdir()
    wrong.mkdir()
    spawn("getEccSoapServer", right)
    spawn("getEccSoapServeX", wrong)
    assert await host.process_running("getEccSoapServer", workdir=str(right))
    assert not await host.process_running("getEccSoapServer", workdir=str(wrong))


@pytest.fixture
def zombie(tmp_path, unique_name):
    """A child that exited and is not reaped yet: its name, still in the process table."""
    name = unique_name("zmb")
    link = tmp_path / name
    link.symlink_to("/bin/true")
    proc = subprocess.Popen([str(link)])  # exits at once; unreaped until wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never became a zombie"
        time.sleep(0.01)
    assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == name
    yield name
    proc.wait()


async def test_a_zombie_is_not_running(host, zombie):
    assert not await host.process_running(zombie)


@pytest.mark.parametrize("bad", ["", "a/b", "-x", "..", "a\0b"])
async def test_unsafe_process_names_refused(host, bad):
    with pytest.raises(UnsafeName):
        await host.process_running(bad)


@pytest.fixture
def own_comm():
    """The kernel's name for the test runner's process."""
    return Path("/proc/self/comm").read_text().strip()


async def test_own_process_seen_with_its_pid(own_comm):
    from attpcdaq.remote import LocalHost

    # The test runner itself: pgrep finds it, /proc gives its working directory.
    found = await LocalHost().processes(own_comm, workdir=os.getcwd())
    assert os.getpid() in [p.pid for p in found]
