"""Helpers shared by the benchmarks: emulator processes, a throwaway data dir."""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from attpcdaq.emulator.process import EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def ecc_emulators(count: int, transition_seconds: str = "1"):
    """Run ``attpcdaq emulate ecc --count N`` in its own process; yield the URLs."""
    with EmulatorProcess(["ecc", "--count", str(count), "--transition-seconds",
                          transition_seconds, "--no-data"], count) as emulator:
        yield emulator.urls


def use_temporary_data_dir() -> Path:
    """Point attpcdaq at a fresh data directory (call before Django is set up)."""
    path = Path(tempfile.mkdtemp(prefix="attpcdaq-bench-"))
    os.environ["ATTPCDAQ_DATA_DIR"] = str(path)
    return path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def wait_until(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")
