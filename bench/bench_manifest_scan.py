"""Benchmark: counting the frames of a ~1 GiB .graw file for the manifest, local and over SSH.

Makes one file of realistic partial-readout frames (10-60 channels firing per
AsAd, 16-96 time buckets each: 1-23 kB frames, ~8 kB on average, four AsAds per
event) in a temporary directory, then times, median of ``--repeat``:

- ``scan local``: ``attpcdaq.remote.scanning.scan_files`` through a LocalHost
  (a worker thread, one 28-byte ``pread`` per frame, seeking by frameSize);
- the ideal it is compared with: the same 28-byte ``pread`` at every frame's
  offset, the offsets known beforehand (the file's headers alone, no parsing);
  and, for scale, a plain ``os.stat`` and reading the whole file;
- ``scan ssh``: the same call through an SshHost to a loopback OpenSSH server
  (attpcdaq.remote.testing), connection already open: one Perl script run
  next to the file, one round trip in all; against the headers alone plus one
  command over the same connection (``true``), and a plain SFTP ``stat``;
- the fallback without Perl (reads at offsets over SFTP, one round trip per
  frame), on the first ``--fallback-frames`` frames only, extrapolated.

The file was just written, so it is in the page cache, as a run's files are
when it is filed. Everything (file, sshd, its keys) is removed at the end.

Usage: .venv/bin/python bench/bench_manifest_scan.py [--mib 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from attpcdaq.get.graw import encode_frame, make_event, scan_headers
from attpcdaq.remote import LocalHost
from attpcdaq.remote.scanning import scan_files
from attpcdaq.remote.testing import LoopbackSshd

NAME = "CoBo3_AsAd0_2026-11-24T10:00:00.000_0000.graw"
CHUNK = 8 << 20


def make_file(path: Path, mib: int) -> tuple[list[int], int]:
    """Write ``mib`` MiB of frames; return every frame's offset and the events written."""
    rng = random.Random(7)
    templates = [bytearray(encode_frame(make_event(3, 0, 0, rng.randrange(10, 61),
                                                   buckets_per_hit=rng.randrange(16, 97),
                                                   seed=n)))
                 for n in range(64)]
    offsets, event, offset, limit = [], 0, 0, mib << 20
    with open(path, "wb") as file:
        buffer = bytearray()
        while offset < limit:
            for asad in range(4):
                frame = templates[rng.randrange(len(templates))]
                frame[22:26] = event.to_bytes(4, "big")
                frame[27] = asad
                offsets.append(offset)
                offset += len(frame)
                buffer += frame
            event += 1
            if len(buffer) >= CHUNK:
                file.write(buffer)
                buffer.clear()
        file.write(buffer)
    return offsets, event


def headers_alone(path: Path, offsets: list[int]) -> None:
    """The floor: read 28 bytes at every frame's offset, known beforehand."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in offsets:
            os.pread(fd, 28, offset)
    finally:
        os.close(fd)


def read_whole(path: Path) -> None:
    with open(path, "rb") as file:
        while file.read(CHUNK):
            pass


def copy_prefix(path: Path, to: Path, size: int) -> None:
    with open(path, "rb") as source:
        to.write_bytes(source.read(size))


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


async def atimed(coroutine) -> tuple[float, object]:
    start = time.perf_counter()
    result = await coroutine
    return time.perf_counter() - start, result


def check(found, frames: int, events: int) -> None:
    """The scan must have counted every frame of the file, per AsAd."""
    scan = found[NAME].scan
    if scan is None or scan.error is not None or scan.frames != frames:
        raise SystemExit(f"the scan counted {scan and scan.frames} of {frames} frames: "
                         f"{scan and scan.error}")
    if {key: (c.first_event, c.last_event) for key, c in scan.counts.items()} != {
            (3, asad): (0, events - 1) for asad in range(4)}:
        raise SystemExit(f"wrong counts: {scan.counts}")


async def run(sshd: LoopbackSshd, root: Path, offsets: list[int], events: int, repeat: int,
              fallback_frames: int) -> dict[str, float]:
    path = root / NAME
    local = LocalHost()
    timings: dict[str, list[float]] = {name: [] for name in (
        "scan local", "headers alone", "stat", "read whole", "scan ssh", "ssh true",
        "sftp stat")}
    async with sshd.pool() as pool:
        host = sshd.host(pool)
        conn = await host.connection()
        sftp = await conn.start_sftp_client()
        for _ in range(repeat):
            seconds, found = await atimed(scan_files(local, str(root), [NAME]))
            check(found, len(offsets), events)
            timings["scan local"].append(seconds)
            timings["headers alone"].append(timed(headers_alone, path, offsets))
            timings["stat"].append(timed(os.stat, path))
            timings["read whole"].append(timed(read_whole, path))
            seconds, found = await atimed(scan_files(host, str(root), [NAME]))
            check(found, len(offsets), events)
            timings["scan ssh"].append(seconds)
            timings["ssh true"].append((await atimed(conn.run("true", check=True)))[0])
            timings["sftp stat"].append((await atimed(sftp.stat(str(path))))[0])
        # The fallback, on a prefix of the file (it costs a round trip per frame).
        small = root / "prefix.graw"
        copy_prefix(path, small, offsets[fallback_frames])
        seconds, found = await atimed(scan_files(host, str(root), [small.name],
                                                 interpreter="no-such-perl"))
        if found[small.name].scan.frames != fallback_frames:
            raise SystemExit("the fallback miscounted")
        if host.connects != 1:
            raise SystemExit(f"expected one SSH connection, opened {host.connects}")
    medians = {name: statistics.median(values) for name, values in timings.items()}
    medians["fallback per frame"] = seconds / fallback_frames
    return medians


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fallback-frames", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="attpcdaq-scan-bench-"))
    try:
        start = time.perf_counter()
        offsets, events = make_file(root / NAME, args.mib)
        size = (root / NAME).stat().st_size
        print(f"made {size / 2**30:.2f} GiB, {len(offsets):,} frames ({size / len(offsets):,.0f} "
              f"B each on average), {events:,} events, in {time.perf_counter() - start:.1f} s")
        assert scan_headers(root / NAME).frames == len(offsets)
        with LoopbackSshd() as sshd:
            m = asyncio.run(run(sshd, root, offsets, events, args.repeat,
                                args.fallback_frames))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"median of {args.repeat}:")
    for name, seconds in m.items():
        if name != "fallback per frame":
            print(f"  {name:<14} {seconds * 1000:10.2f} ms")
    print(f"  ratio scan local / headers alone: {m['scan local'] / m['headers alone']:.2f} "
          "(target <= 3)")
    print(f"  ratio scan local / stat: {m['scan local'] / m['stat']:,.0f}; "
          f"/ read whole: {m['scan local'] / m['read whole']:.3f}")
    ideal_ssh = m["headers alone"] + m["ssh true"]
    print(f"  ratio scan ssh / (headers alone + ssh true): {m['scan ssh'] / ideal_ssh:.2f} "
          "(target <= 3)")
    print(f"  ratio scan ssh / sftp stat: {m['scan ssh'] / m['sftp stat']:,.0f}")
    fallback = m["fallback per frame"] * len(offsets)
    print(f"  without Perl (reads at offsets over SFTP): {m['fallback per frame'] * 1e6:.0f} us "
          f"per frame, ~{fallback:.1f} s for this file ({fallback / m['scan ssh']:.0f} x the "
          "script)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
