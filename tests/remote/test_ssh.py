"""The SSH transport and the pool: connection reuse, reconnection, failures, timeouts."""

import asyncio
import os
import socket
import subprocess
import time

import pytest

from attpcdaq.remote import (
    HostPool,
    HostUnreachable,
    LocalHost,
    RemoteTimeout,
    SshHost,
    SshOptions,
)
from attpcdaq.remote.testing import free_port


def established_to(port: int) -> int:
    """How many ESTABLISHED TCP connections of this machine go to 127.0.0.1:``port``."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].split(":")[1], 16) == port:
                count += 1
    return count


async def test_pool_gives_the_same_host_and_one_connection(sshd, ssh_pool, tmp_path):
    host = sshd.host(ssh_pool)
    assert sshd.host(ssh_pool) is host
    before = established_to(sshd.port)
    conn = await host.connection()
    await host.list_files(str(tmp_path))
    await host.process_running("sshd")
    await host.tail(str(sshd.log), 2)
    await asyncio.gather(*(host.list_files(str(tmp_path)) for _ in range(20)))
    assert await host.connection() is conn
    assert host.connects == 1
    assert established_to(sshd.port) == before + 1


async def test_concurrent_commands_beyond_the_session_limit(sshd, ssh_pool, tmp_path):
    host = sshd.host(ssh_pool)
    results = await asyncio.gather(*(host.process_running("sshd") for _ in range(24)))
    assert all(results) and host.connects == 1


async def test_reconnects_after_the_connection_dropped(sshd, ssh_pool, tmp_path):
    host = sshd.host(ssh_pool)
    first = await host.connection()
    first.abort()  # as if the network or sshd dropped it
    await first.wait_closed()
    assert await host.list_files(str(tmp_path)) == []
    assert await host.connection() is not first
    assert host.connects == 2


async def test_close_then_use_again(sshd, tmp_path):
    async with sshd.pool() as pool:
        host = sshd.host(pool)
        await host.list_files(str(tmp_path))
        await pool.close()
        assert await host.list_files(str(tmp_path)) == []  # reopened on demand
        assert host.connects == 2
        await host.close()


async def test_closed_port_is_unreachable_quickly():
    port = free_port()
    host = SshHost("127.0.0.1", SshOptions(port=port))
    start = time.monotonic()
    with pytest.raises(HostUnreachable) as caught:
        await host.process_running("dataRouter")
    assert time.monotonic() - start < 2
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_silent_server_times_out_with_the_host_named():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks SSH
    port = listener.getsockname()[1]
    try:
        host = SshHost("127.0.0.1", SshOptions(port=port, connect_timeout=0.5))
        start = time.monotonic()
        with pytest.raises(RemoteTimeout) as caught:
            await host.list_files("/tmp")
        assert time.monotonic() - start < 3
        assert f"127.0.0.1:{port}" in str(caught.value)
    finally:
        listener.close()


async def test_unknown_host_key_is_never_trusted(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    async with sshd.pool(known_hosts=(str(empty),)) as pool:
        with pytest.raises(HostUnreachable, match="host key") as caught:
            await sshd.host(pool).list_files(str(tmp_path))
    assert str(sshd.port) in str(caught.value)


@pytest.fixture
def other_key(tmp_path):
    """A fresh key pair nobody knows: its private key path."""
    path = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path


async def test_wrong_host_key_is_refused(sshd, tmp_path, other_key):
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other_key.with_suffix('.pub').read_text()}")
    async with sshd.pool(known_hosts=(str(wrong),)) as pool:
        with pytest.raises(HostUnreachable, match="host key"):
            await sshd.host(pool).list_files(str(tmp_path))


async def test_unauthorized_key_is_refused(sshd, tmp_path, other_key):
    async with sshd.pool(client_keys=(str(other_key),), config=()) as pool:
        with pytest.raises(HostUnreachable, match="login refused"):
            await sshd.host(pool).list_files(str(tmp_path))


async def test_client_config_alone_is_enough(sshd, tmp_path):
    # Host alias, port, user, key and known_hosts all come from the ssh config file.
    options = SshOptions(config=(str(sshd.client_config),), use_agent=False)
    async with HostPool(options) as pool:
        host = pool.host("loopback-sshd", local=False)
        assert isinstance(host, SshHost)
        assert await host.list_files(str(tmp_path)) == []


def test_ssh_command_line_reaches_the_server(sshd, tmp_path):
    done = subprocess.run(sshd.ssh_command(f"cd {tmp_path} && pwd"), capture_output=True,
                          text=True, timeout=30, check=True)
    assert done.stdout.strip() == str(tmp_path)


async def _open_writer(fifo, timeout=5.0):
    """Open a FIFO for writing once its reader is there (ENXIO until then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


def test_pool_chooses_the_transport():
    pool = HostPool()
    assert isinstance(pool.host("127.0.0.1"), LocalHost)
    assert isinstance(pool.host("localhost"), LocalHost)
    assert isinstance(pool.host("daq-mini-3", local=True), LocalHost)
    assert isinstance(pool.host("127.0.0.1", local=False), SshHost)
    assert isinstance(pool.host("10.0.0.20"), SshHost)
    assert pool.host("10.0.0.20") is pool.host("10.0.0.20")
    assert pool.host("10.0.0.20", port=2222) is not pool.host("10.0.0.20")
    assert pool.host("10.0.0.20", port=2222).options.port == 2222


async def test_operation_timeout_then_the_host_still_works(host, tmp_path):
    fifo = tmp_path / "stuck.log"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes
    try:
        with pytest.raises(RemoteTimeout) as caught:
            await host.tail(str(fifo), timeout=0.5)
        assert host.name in str(caught.value) and "stuck.log" in str(caught.value)
        # The reader is still stuck on the host (over SSH: the SFTP server, which
        # answers in order). The host must serve the next operation all the same.
        (tmp_path / "a.graw").write_bytes(b"1")
        files = await host.list_files(str(tmp_path), timeout=5)
        assert [f.name for f in files] == ["a.graw"]
    finally:
        os.close(await _open_writer(fifo))  # let the stuck reader go
