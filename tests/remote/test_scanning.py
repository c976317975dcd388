"""Counting frames where the files lie: the same answer through both transports."""

import random

import pytest

from attpcdaq.get.graw import encode_frame, make_event, scan_headers
from attpcdaq.remote import UnsafeName
from attpcdaq.remote.scanning import FileStamp, scan_files, stamp_files

DIRECTORY = "run 'A' \"B\" $(x) é"


def frames(cobo: int, events: range, hits: int = 3) -> bytes:
    return b"".join(encode_frame(make_event(cobo, asad, event, hits, buckets_per_hit=1 + event % 9))
                    for event in events for asad in range(4))


def starts(data: bytes) -> list[int]:
    """The offsets of the frames of ``data``."""
    found, offset = [], 0
    while offset < len(data):
        found.append(offset)
        offset += int.from_bytes(data[offset + 1:offset + 4], "big") << (data[offset] & 15)
    return found


def damaged(data: bytes, seed: int) -> bytes:
    """``data`` cut short, or one header byte of one of its frames overwritten."""
    rng = random.Random(seed)
    if seed % 3 == 0:
        return data[:rng.randrange(1, len(data))]
    at = rng.choice(starts(data)) + rng.choice([0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 15])
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]


def append(path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


@pytest.fixture
def run_dir(tmp_path):
    """A run directory of good, cut and damaged files (and a name that is not there)."""
    directory = tmp_path / DIRECTORY
    directory.mkdir()
    good = frames(2, range(40))
    files = {"CoBo2_AsAd0_2026-11-24T10:00:00.000_0000.graw": good,
             "CoBo2_AsAd1_2026-11-24T10:00:00.000_0000.graw": frames(2, range(7, 9)),
             "empty.graw": b""}
    for seed in range(40):
        files[f"damaged_{seed:02d}.graw"] = damaged(good, seed)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory, [*files, "gone.graw"]


async def test_the_scan_says_what_the_python_scan_says_through_both_transports(host, run_dir):
    directory, names = run_dir
    found = await scan_files(host, str(directory), names)
    assert list(found) == names
    errors = 0
    for name in names[:-1]:
        path = directory / name
        expected = scan_headers(path, strict=False)
        scanned = found[name]
        assert scanned.problem == "" and scanned.stamp.size == path.stat().st_size
        # Local stamps are exact; over SSH the script's are a double's worth of seconds.
        assert abs(scanned.stamp.mtime_ns - path.stat().st_mtime_ns) < 10_000
        assert scanned.scan.counts == expected.counts, name
        assert (scanned.scan.other_frames, scanned.scan.size) == (expected.other_frames,
                                                                 expected.size)
        assert str(scanned.scan.error) == str(expected.error), name
        errors += expected.error is not None
    assert errors > 30  # the damage was seen, each where the Python scan sees it
    assert found[names[0]].scan.counts[2, 3].frames == 40
    assert found[names[1]].scan.counts[2, 0].first_event == 7
    gone = found["gone.graw"]
    assert (gone.stamp, gone.scan, gone.problem) == (None, None, "No such file or directory")


async def test_stamps_change_when_a_file_grows(host, run_dir):
    directory, names = run_dir
    found = await scan_files(host, str(directory), names[:2])
    append(directory / names[1], frames(2, range(9, 10)))
    stamps = await stamp_files(host, str(directory), [*names[:2], "gone.graw"])
    assert stamps[names[0]] == found[names[0]].stamp
    assert stamps[names[1]] != found[names[1]].stamp
    assert stamps[names[1]].size == (directory / names[1]).stat().st_size
    assert stamps["gone.graw"] is None


async def test_without_perl_the_scan_reads_headers_at_offsets(ssh_host, run_dir):
    directory, names = run_dir
    found = await scan_files(ssh_host, str(directory), names, interpreter="no-such-perl-here")
    for name in names[:-1]:
        expected = scan_headers(directory / name, strict=False)
        assert found[name].scan.counts == expected.counts
        assert str(found[name].scan.error) == str(expected.error)
        assert found[name].stamp == FileStamp(expected.size, 0)  # no mtime this way
    assert found["gone.graw"].scan is None and "no such file" in found["gone.graw"].problem.lower()
    stamps = await stamp_files(ssh_host, str(directory), names[:1], interpreter="no-such-perl")
    assert stamps == {names[0]: FileStamp((directory / names[0]).stat().st_size, 0)}


async def test_names_that_leave_the_directory_are_refused(host, run_dir):
    directory, _ = run_dir
    for name in ("../x.graw", "-n.graw", ".."):
        with pytest.raises(UnsafeName):
            await scan_files(host, str(directory), [name])
