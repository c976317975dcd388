"""Benchmark: file_run of 10,000 files over SSH on loopback, against one plain ``mv``.

Starts a private OpenSSH server on 127.0.0.1 (attpcdaq.remote.testing), fills
a temporary directory with small ``.graw`` files, and times:

- ``file_run`` through an SshHost whose connection is already open (the
  engine keeps one per host), checked afterwards: every file filed once;
- the ideal: ONE shell command ``cd D && mkdir -p X && mv -- *.graw X/`` on
  the same host, run locally (subprocess) and over the same SSH connection.

Prints the median of each and the ratios (target: file_run <= 3 x ideal).
Everything (files, sshd, its keys) is removed at the end.

Usage: .venv/bin/python bench/bench_file_run_ssh.py [--files 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attpcdaq.remote.testing import LoopbackSshd

IDEAL = 'cd "$1" && mkdir -p X && mv -- *.graw X/'


def make_files(directory: Path, count: int) -> None:
    """Fill ``directory`` with ``count`` small files named like a data router's."""
    for i in range(count):
        name = f"CoBo_AsAd{i % 4}_2017-03-01T15:30:12.345_{i:05d}.graw"
        (directory / name).write_bytes(b"\0" * 64)


def fresh_dir(root: Path, count: int) -> Path:
    """A new directory holding ``count`` files."""
    directory = Path(tempfile.mkdtemp(dir=root))
    make_files(directory, count)
    return directory


async def time_file_run(host, root: Path, count: int) -> float:
    """Seconds for one file_run of ``count`` files, after checking its outcome."""
    directory = fresh_dir(root, count)
    start = time.perf_counter()
    result = await host.file_run(str(directory), "bench exp", 1, timeout=120)
    elapsed = time.perf_counter() - start
    filed = list((directory / "bench exp" / "run_0001").iterdir())
    if len(result.moved) != count or len(filed) != count or len(list(directory.iterdir())) != 1:
        raise SystemExit(f"file_run filed {len(filed)} of {count} files")
    shutil.rmtree(directory)
    return elapsed


def time_ideal_local(root: Path, count: int) -> float:
    """Seconds for one ``mv`` of every file, in a local shell."""
    directory = fresh_dir(root, count)
    start = time.perf_counter()
    subprocess.run(["sh", "-c", IDEAL, "sh", str(directory)], check=True, timeout=120)
    elapsed = time.perf_counter() - start
    shutil.rmtree(directory)
    return elapsed


async def time_ideal_ssh(conn, root: Path, count: int) -> float:
    """Seconds for one ``mv`` of every file, as one command over the open SSH connection."""
    directory = fresh_dir(root, count)
    start = time.perf_counter()
    await conn.run(f"sh -c '{IDEAL}' sh '{directory}'", check=True, timeout=120)
    elapsed = time.perf_counter() - start
    shutil.rmtree(directory)
    return elapsed


async def run(sshd: LoopbackSshd, root: Path, count: int, repeat: int) -> dict[str, float]:
    """Time each contender ``repeat`` times; return the medians."""
    async with sshd.pool() as pool:
        host = sshd.host(pool)
        start = time.perf_counter()
        conn = await host.connection()
        print(f"connect (once per host):  {time.perf_counter() - start:.3f} s")
        timings: dict[str, list[float]] = {"file_run": [], "ideal local": [], "ideal ssh": []}
        for _ in range(repeat):
            timings["file_run"].append(await time_file_run(host, root, count))
            timings["ideal local"].append(time_ideal_local(root, count))
            timings["ideal ssh"].append(await time_ideal_ssh(conn, root, count))
        if host.connects != 1:
            raise SystemExit(f"expected one SSH connection, opened {host.connects}")
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="attpcdaq-filerun-bench-"))
    try:
        with LoopbackSshd() as sshd:
            medians = asyncio.run(run(sshd, root, args.files, args.repeat))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.files} files, median of {args.repeat}:")
    for name, seconds in medians.items():
        print(f"  {name:<12} {seconds:.3f} s")
    for ideal in ("ideal local", "ideal ssh"):
        print(f"  ratio file_run / {ideal}: {medians['file_run'] / medians[ideal]:.2f}"
              " (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
