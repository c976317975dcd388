"""Emulators in processes of their own, for the demo, the benchmarks and the tests.

A separate process is what the run control meets at the lab: a program named
``getEccSoapServer`` or ``dataRouter`` that it finds with a process check.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import IO


class EmulatorProcess:
    """``attpcdaq emulate ARGUMENTS --port 0`` running until :meth:`stop`.

    Parameters
    ----------
    arguments
        What follows ``attpcdaq emulate``: ``["ecc", "--count", "5"]``.
    count
        How many ``listening on HOST:PORT`` lines to wait for.
    stderr
        Where its log goes (default: inherited).

    Raises
    ------
    RuntimeError
        When it exits before listening.
    """

    def __init__(self, arguments: list[str], count: int = 1, stderr: IO | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "attpcdaq", "emulate", *arguments, "--port", "0"],
            stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.addresses: list[str] = []
        while len(self.addresses) < count:
            line = self.process.stdout.readline()
            if not line:
                self.stop()
                raise RuntimeError(f"attpcdaq emulate {arguments[0]} exited before listening")
            if line.startswith("listening on "):
                self.addresses.append(line.split()[-1])

    @property
    def ports(self) -> list[int]:
        """The ports it listens on."""
        return [int(address.rsplit(":", 1)[1]) for address in self.addresses]

    @property
    def urls(self) -> list[str]:
        """``http://HOST:PORT/`` of each server (for ECC servers)."""
        return [f"http://{address}/" for address in self.addresses]

    def stop(self, timeout: float = 10.0) -> int:
        """Interrupt it as Ctrl-C would, kill it if it lingers; return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
