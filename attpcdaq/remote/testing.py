"""A real OpenSSH server on 127.0.0.1 for tests and benchmarks, with keys of its own.

Usage::

    with LoopbackSshd() as sshd:              # starts /usr/sbin/sshd -D -e on a free port
        async with sshd.pool() as pool:
            host = sshd.host(pool)            # an SshHost, even though it is 127.0.0.1
            await host.list_files("/tmp")

Everything lives in a temporary directory removed by :meth:`LoopbackSshd.stop`:
a host key, a client key authorized for the current user only, a known_hosts
holding the host key (so host key checking stays on), and an OpenSSH client
config that both asyncssh and the ``ssh`` command read (``ssh -F
sshd.client_config loopback-sshd``). Root may log in with the key only
(``PermitRootLogin prohibit-password``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .pool import HostPool
from .ssh import SshHost, SshOptions

__all__ = ["SSHD", "LoopbackSshd"]

SSHD = "/usr/sbin/sshd"
#: The Host alias the client config defines.
ALIAS = "loopback-sshd"

_SERVER_CONFIG = """\
ListenAddress 127.0.0.1
HostKey {dir}/host_ed25519
PidFile none
AuthorizedKeysFile {dir}/authorized_keys
AllowUsers {user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxSessions 10
MaxStartups 64
LoginGraceTime 30
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""

_CLIENT_CONFIG = """\
Host {alias} 127.0.0.1
    HostName 127.0.0.1
    Port {port}
    User {user}
    IdentityFile {dir}/client_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile {dir}/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
"""


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _keygen(path: Path, comment: str) -> str:
    """Create an ed25519 key pair without passphrase at ``path``; return the public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                    "-f", str(path)], check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


def _children(pid: int) -> list[int]:
    """The PIDs whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


class LoopbackSshd:
    """An OpenSSH server on 127.0.0.1 that accepts the current user with a key of its own.

    Parameters
    ----------
    sshd
        The sshd binary (an absolute path, as sshd requires).
    """

    address = "127.0.0.1"

    def __init__(self, sshd: str = SSHD) -> None:
        self.sshd = sshd
        self.username = getpass.getuser()
        self.port = 0
        self.dir = Path()  # a fresh temporary directory once started
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts(self) -> Path:
        """The known_hosts file holding this server's host key."""
        return self.dir / "known_hosts"

    @property
    def client_key(self) -> Path:
        """The private key this server accepts for the current user."""
        return self.dir / "client_ed25519"

    @property
    def client_config(self) -> Path:
        """An OpenSSH client config defining the ``loopback-sshd`` alias."""
        return self.dir / "ssh_config"

    @property
    def log(self) -> Path:
        """What sshd logged (``-e``: to this file)."""
        return self.dir / "sshd.log"

    def start(self, timeout: float = 15.0) -> LoopbackSshd:
        """Write keys and configs, start sshd and wait until it greets; return self.

        Raises
        ------
        RuntimeError
            When sshd refuses its configuration or does not answer in time
            (the message holds its log).
        """
        self.dir = Path(tempfile.mkdtemp(prefix="attpcdaq-sshd-"))
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> LoopbackSshd:
        """Do the work of :meth:`start` in ``self.dir``."""
        host_pub = _keygen(self.dir / "host_ed25519", "loopback-sshd host")
        (self.dir / "authorized_keys").write_text(
            _keygen(self.client_key, "loopback-sshd client") + "\n")
        config = self.dir / "sshd_config"
        config.write_text(_SERVER_CONFIG.format(dir=self.dir, user=self.username))
        if os.geteuid() == 0:
            # sshd running as root needs its privilege separation directory.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        checked = subprocess.run([self.sshd, "-t", "-f", str(config)], capture_output=True,
                                 text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"sshd refuses its configuration: {checked.stderr}")
        for _attempt in range(3):  # another process may grab the free port first
            self.port = free_port()
            self.known_hosts.write_text(f"[{self.address}]:{self.port} {host_pub}\n")
            self.client_config.write_text(_CLIENT_CONFIG.format(
                alias=ALIAS, port=self.port, user=self.username, dir=self.dir))
            with open(self.log, "ab") as log:
                self._process = subprocess.Popen(
                    [self.sshd, "-D", "-e", "-f", str(config), "-p", str(self.port)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            if self._wait_ready(timeout):
                return self
            self._end_process()
        raise RuntimeError(f"sshd did not start:\n{self.log.read_text(errors='replace')}")

    def _wait_ready(self, timeout: float) -> bool:
        """Wait until sshd sends its banner; False if it exited (port taken) or timed out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as conn:
                    if conn.recv(4).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop sshd and its session processes, then remove keys, configs and logs."""
        self._end_process()
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)

    def _end_process(self) -> None:
        """Stop the sshd this object started (and what it forked), by its process group."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Each connection's sshd calls setsid(): end them by PID, as children of ours.
        for pid in [process.pid, *_children(process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LoopbackSshd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def options(self, **overrides: object) -> SshOptions:
        """SshOptions that reach this server with its own keys, known_hosts and config."""
        values: dict[str, object] = {
            "username": self.username, "port": self.port, "known_hosts": (str(self.known_hosts),),
            "client_keys": (str(self.client_key),), "config": (str(self.client_config),),
            "use_agent": False, "connect_timeout": 5.0}
        values.update(overrides)
        return SshOptions(**values)  # type: ignore[arg-type]

    def pool(self, **overrides: object) -> HostPool:
        """A HostPool whose SSH options reach this server."""
        return HostPool(self.options(**overrides))

    def host(self, pool: HostPool) -> SshHost:
        """This server as an SshHost of ``pool`` (SSH although the address is loopback)."""
        host = pool.host(self.address, port=self.port, username=self.username, local=False)
        if not isinstance(host, SshHost):
            raise TypeError(f"expected an SshHost, got {host!r}")
        return host

    def ssh_command(self, command: str) -> list[str]:
        """The ``ssh`` command line that runs ``command`` (one shell string) on this server."""
        return ["ssh", "-F", str(self.client_config), ALIAS, command]
