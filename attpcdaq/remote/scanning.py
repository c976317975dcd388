"""Counting the frames of a run's ``.graw`` files where they lie, and stamping them.

A header scan reads 28 bytes per frame and skips the rest by the frame's size
(:func:`attpcdaq.get.graw.scan_headers`). The offset of a frame is known only
once the previous header is read, so reads at offsets over SFTP would cost one
round trip per frame (a 1 GiB file holds ~10^5 frames: minutes over a LAN), and
pipelining cannot help. So:

- on this machine (:class:`LocalHost`) the scan runs in a worker thread, one
  ``pread`` per frame;
- on another (:class:`SshHost`) a small Perl script does the same next to the
  files and prints only the counts: one command per call, whatever the number of
  files or frames. Perl, because it is on every DAQ computer we may meet (macOS
  ships it; Debian's perl-base is essential), unlike Python on an old Mac. As
  with filing, the login shell only ever sees the fixed words ``perl -``: the
  script comes on standard input, the directory and names after its ``__END__``,
  NUL-separated, so no name is ever parsed by a shell.
- Where ``perl`` is missing (exit status 127), the scan falls back to reads at
  offsets through the transport (slow, but right), and stamps then carry the
  size only (mtime 0).

The script finds where a frame is bad; the message is made here, from the bytes
it sends back, by the same checks as the Python scan, so both transports say
the same thing.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from attpcdaq.get.graw import AsadCount, GrawError, HeaderScan, check_scanned_header, scan_headers
from attpcdaq.get.graw import scan_steps as _scan_steps

from .base import DEFAULT_FILING_TIMEOUT, RemoteHost
from .exceptions import RemoteCommandError, RemoteFileError
from .local import LocalHost
from .names import check_component

__all__ = ["SCAN_SCRIPT", "FileStamp", "ScannedFile", "scan_files", "stamp_files"]

#: Exit status of a shell that did not find the command.
_NOT_FOUND = 127


@dataclass(frozen=True, slots=True)
class FileStamp:
    """A file's size and modification time (ns; 0 when the transport cannot tell)."""

    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """One file as a scan found it: its stamp (taken before reading) and its counts.

    ``stamp`` and ``scan`` are None when the file could not be opened; ``problem``
    then says why.
    """

    name: str
    stamp: FileStamp | None
    scan: HeaderScan | None
    problem: str = ""


# The scan of check_scanned_header, in Perl: it must find a bad frame exactly where the
# Python scan does (the tests run both on the same files), and send back its first bytes.
SCAN_SCRIPT = r"""use strict; use warnings;
binmode STDOUT; binmode DATA;
my $hires = eval { require Time::HiRes; 1 };
my @words; { local $/ = "\0"; @words = <DATA>; chomp @words; }
my ($mode, $dir, @names) = @words;
my $n = -1;
for my $name (@names) {
    $n++;
    my $fh;
    if (!open($fh, '<', "$dir/$name")) { printf "X %d %d %s\n", $n, $! + 0, $!; next; }
    binmode $fh;
    my @st = $hires ? eval { Time::HiRes::stat($fh) } : ();
    @st = stat($fh) unless @st;
    my $size = $st[7];
    printf "F %d %d %.9f\n", $n, $size, $st[9];
    if ($mode ne 'scan') { close $fh; next; }
    my ($off, $other, $bad, $head, %c, @order) = (0, 0, 0, '');
    while ($off < $size) {
        my $left = $size - $off;
        my $want = $left < 28 ? $left : 28;
        if (!sysseek($fh, $off, 0)) { printf "R %d %d %s\n", $n, $off, $!; $bad = -1; last; }
        my $got = sysread($fh, $head, $want);
        if (!defined $got) { printf "R %d %d %s\n", $n, $off, $!; $bad = -1; last; }
        if ($got < 4) { $bad = 1; last; }
        my $meta = ord($head);
        if ($meta & 0xF0) { $bad = 1; last; }
        my $shift = $meta & 0x0F;
        my $length = unpack('N', "\0" . substr($head, 1, 3)) << $shift;
        if ($length < 75 || $length > $left || $got < 28) { $bad = 1; last; }
        my ($type, $hblocks, $isize, $items, $event, $cobo, $asad) =
            unpack('x5 n x n n N x6 N C C', $head);
        my $hbytes = $hblocks << $shift;
        if ($hbytes < 75 || $hbytes > $length) { $bad = 1; last; }
        if ($type == 1 || $type == 2) {
            if ($isize != ($type == 1 ? 4 : 2) || $hbytes + $items * $isize > $length) {
                $bad = 1; last;
            }
            my $key = "$cobo $asad";
            if (my $count = $c{$key}) { $count->[0]++; $count->[2] = $event; }
            else { $c{$key} = [1, $event, $event]; push @order, $key; }
        } else { $other++; }
        $off += $length;
    }
    print "C $n $_ @{$c{$_}}\n" for @order;
    print "O $n $other\n" if $other;
    printf "E %d %d %d %s\n", $n, $off, $size - $off, unpack('H*', $head) if $bad > 0;
    close $fh;
}
print "END\n";
"""


async def scan_files(host: RemoteHost, directory: str, names: Iterable[str], *,
                     timeout: float | None = DEFAULT_FILING_TIMEOUT,
                     interpreter: str = "perl") -> dict[str, ScannedFile]:
    """Stamp and scan the headers of the files ``names`` of ``directory`` on ``host``.

    Parameters
    ----------
    host
        Where the files are.
    directory
        Their directory on the host.
    names
        File names (no directory), each checked as a path component.
    timeout
        Seconds before giving up.
    interpreter
        The Perl of a remote host (a test names a missing one to take the fallback).

    Returns
    -------
    dict
        Per name, a :class:`ScannedFile`: a truncated or malformed frame is in its
        scan's ``error`` (the counts are those of the frames before), a file that
        could not be opened has ``problem`` set.

    Raises
    ------
    UnsafeName
        When a name could leave the directory.
    RemoteError
        When the host cannot be reached or the script fails.
    """
    wanted = [check_component(host.name, "file name", n) for n in names]
    async with host._operation(f"counting the frames of {len(wanted)} file(s) in "
                               f"{directory!r}", timeout):
        if isinstance(host, LocalHost):
            return await asyncio.to_thread(_scan_here, directory, wanted, True)
        found = await _scan_there(host, directory, wanted, "scan", interpreter)
        if found is None:
            return await _scan_by_reads(host, directory, wanted)
        return found


async def stamp_files(host: RemoteHost, directory: str, names: Iterable[str], *,
                      timeout: float | None = None,
                      interpreter: str = "perl") -> dict[str, FileStamp | None]:
    """Size and modification time of each of ``names`` in ``directory``; None if gone.

    Stamps compare with those of :func:`scan_files` on the same host and interpreter.
    """
    wanted = [check_component(host.name, "file name", n) for n in names]
    async with host._operation(f"checking {len(wanted)} file(s) in {directory!r}", timeout):
        if isinstance(host, LocalHost):
            found = await asyncio.to_thread(_scan_here, directory, wanted, False)
        else:
            found = await _scan_there(host, directory, wanted, "stat", interpreter)
            if found is None:
                entries = {e.name: e for e in await host._entries(directory) if e.regular}
                return {n: FileStamp(entries[n].size, 0) if n in entries else None
                        for n in wanted}
    return {name: f.stamp for name, f in found.items()}


def _scan_here(directory: str, names: list[str], scan: bool) -> dict[str, ScannedFile]:
    """Stamp (and scan) files on this machine, one ``pread`` per frame."""
    found = {}
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as stream:
                info = os.fstat(stream.fileno())
                stamp = FileStamp(info.st_size, info.st_mtime_ns)
                result = scan_headers(stream, size=info.st_size, strict=False) if scan else None
        except OSError as exc:
            found[name] = ScannedFile(name, None, None, exc.strerror or str(exc))
            continue
        found[name] = ScannedFile(name, stamp, result)
    return found


async def _scan_there(host: RemoteHost, directory: str, names: list[str], mode: str,
                      interpreter: str) -> dict[str, ScannedFile] | None:
    """Run the script on the host and read its report; None when it has no Perl."""
    data = "\0".join([mode, directory, *names]).encode(errors="surrogateescape")
    stdin = SCAN_SCRIPT.encode() + b"__END__\n" + data + b"\0"
    done = await host._run([interpreter, "-"], stdin)
    if done.exit_status == _NOT_FOUND and not done.stdout:
        return None
    if done.exit_status != 0 or not done.stdout.endswith(b"END\n"):
        raise RemoteCommandError(host.name, f"counting frames in {directory!r} with "
                                 f"{interpreter}", done.exit_status,
                                 done.stderr.decode(errors="replace"))
    return _read_report(host.name, directory, names, done.stdout)


def _read_report(host: str, directory: str, names: list[str],
                 report: bytes) -> dict[str, ScannedFile]:
    """Turn the script's lines into ScannedFiles (bad frames checked again here)."""
    stamps: dict[int, FileStamp] = {}
    scans: dict[int, HeaderScan] = {}
    problems: dict[int, str] = {}
    for line in report.decode(errors="replace").splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "END":
            break
        fields = rest.split(" ", 3 if tag == "E" else 2 if tag in "XR" else 6)
        index = int(fields[0])
        if tag == "F":
            stamps[index] = FileStamp(int(fields[1]), _ns(host, fields[2]))
            scans[index] = HeaderScan(int(fields[1]))
        elif tag == "C":
            cobo, asad, frames, first, last = map(int, fields[1:6])
            scans[index].counts[cobo, asad] = AsadCount(frames, first, last)
        elif tag == "O":
            scans[index].other_frames = int(fields[1])
        elif tag == "E":
            offset, left = int(fields[1]), int(fields[2])
            scans[index].error = _bad_frame(host, posixpath.join(directory, names[index]),
                                            bytes.fromhex(fields[3]), offset, left)
        elif tag == "X":
            problems[index] = fields[2] if len(fields) > 2 else "cannot be opened"
        elif tag == "R":
            problems[index] = f"cannot be read at byte {fields[1]}: {fields[2]}"
    found = {}
    for index, name in enumerate(names):
        if index in problems or index not in stamps:
            found[name] = ScannedFile(name, None, None, problems.get(index, "not reported"))
        else:
            found[name] = ScannedFile(name, stamps[index], scans[index])
    return found


def _ns(host: str, text: str) -> int:
    """A modification time in seconds as the script printed it, in nanoseconds."""
    try:
        return int(Decimal(text) * 1_000_000_000)
    except InvalidOperation:
        raise RemoteCommandError(host, f"the frame count script printed the time {text!r}",
                                 0) from None


def _bad_frame(host: str, path: str, head: bytes, offset: int, left: int) -> GrawError:
    """The error of the frame the script found bad, said as the Python scan says it."""
    try:
        check_scanned_header(head, left)
    except GrawError as exc:
        return exc.shifted(offset, path)
    raise RemoteCommandError(host, f"{path}: byte {offset}: the frame count script found a "
                             f"bad frame that attpcdaq reads as good ({head.hex()})", 0)


async def _scan_by_reads(host: RemoteHost, directory: str,
                         names: list[str]) -> dict[str, ScannedFile]:
    """The fallback: drive the scan with reads at offsets, one round trip per frame."""
    found = {}
    for name in names:
        path = posixpath.join(directory, name)
        try:
            async with host._reader(path) as (size, read_at):
                steps = _scan_steps(size)
                try:
                    request = next(steps)
                    while True:
                        request = steps.send(await read_at(*request))
                except StopIteration as done:
                    scan: HeaderScan = done.value
        except RemoteFileError as exc:  # gone or unreadable: say so, go on with the others
            found[name] = ScannedFile(name, None, None, exc.detail)
            continue
        if scan.error is not None:
            scan.error = scan.error.shifted(0, path)
        found[name] = ScannedFile(name, FileStamp(size, 0), scan)
    return found
