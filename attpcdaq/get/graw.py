"""GET frames: what a CoBo sends to its data router and what ``.graw`` files hold.

A frame, all integers big-endian (the CoBo is a PowerPC)::

    byte  0  metaType      1   low 4 bits: log2 of the block size (6 -> 64-byte blocks)
    byte  1  frameSize     3   whole frame, in blocks
    byte  4  dataSource    1
    byte  5  frameType     2   1 partial readout (4-byte items), 2 full readout (2-byte items)
    byte  7  revision      1
    byte  8  headerSize    2   in blocks (4 -> 256 bytes)
    byte 10  itemSize      2
    byte 12  nItems        4
    byte 16  eventTime     6
    byte 22  eventIdx      4
    byte 26  coboIdx       1
    byte 27  asadIdx       1
    byte 28  readOffset    2
    byte 30  status        1
    byte 31  hitPattern    4 x 9   one bit per channel, bit c of AGET a's 72-bit integer
    byte 67  multiplicity  4 x 2   channels that fired, per AGET
    zeros up to headerSize blocks, the items, zeros up to frameSize blocks

Partial-readout item: AGET (bits 31-30), channel (29-23), time bucket (22-14), two
zero bits, sample (11-0). Full-readout item: AGET (bits 15-14), two zero bits,
sample (11-0); each AGET's items come channel 0-67 of bucket 0, then of bucket 1...,
so the position of an item among its AGET's gives its channel and bucket.

Hit patterns and multiplicities are written from the items; on reading they are
not checked against them (a :class:`Frame` always computes them from its items).
"""

from __future__ import annotations

import enum
import os
import random
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from .exceptions import GetError

__all__ = [
    "HEADER_BYTES",
    "SCAN_BYTES",
    "AsadCount",
    "Frame",
    "FrameType",
    "GrawError",
    "HeaderScan",
    "Item",
    "check_scanned_header",
    "decode_frame",
    "encode_frame",
    "frame_length",
    "iter_frames",
    "make_event",
    "scan_headers",
    "scan_steps",
]

N_AGETS = 4
N_CHANNELS = 68
N_BUCKETS = 512
MAX_SAMPLE = 0xFFF
_HEADER = struct.Struct(">B3sBHBHHI6sIBBHB36s8s")
#: The bytes of a frame header before its zero padding.
HEADER_BYTES = _HEADER.size


class FrameType(enum.IntEnum):
    """How the items of a frame are read out."""

    PARTIAL = 1
    FULL = 2


_ITEM_SIZE = {FrameType.PARTIAL: 4, FrameType.FULL: 2}


class GrawError(GetError, ValueError):
    """A GET frame that is truncated or malformed; says where, in bytes."""

    def __init__(self, detail: str, offset: int, source: str | None = None) -> None:
        self.detail = detail
        self.offset = offset
        self.source = source
        where = f"{source}: byte {offset}" if source else f"byte {offset}"
        super().__init__(f"{where}: {detail}")

    def shifted(self, base: int, source: str | None = None) -> GrawError:
        """Return the same error at ``base`` bytes further on, in ``source``."""
        return GrawError(self.detail, base + self.offset, source or self.source)


class Item(NamedTuple):
    """One sample: which AGET chip and channel, which time bucket, and its value."""

    aget: int
    channel: int
    bucket: int
    sample: int


@dataclass(slots=True)
class Frame:
    """One GET frame: the data of one AsAd for one event."""

    event_idx: int
    cobo_idx: int
    asad_idx: int
    event_time: int = 0
    items: list[Item] = field(default_factory=list)
    frame_type: FrameType = FrameType.PARTIAL
    data_source: int = 0
    revision: int = 5
    read_offset: int = 0
    status: int = 0
    #: Low 4 bits: log2 of the block size; the high bits (little-endian, blob) stay 0.
    meta_type: int = 6
    header_blocks: int = 4

    @property
    def block_size(self) -> int:
        """Bytes per block, from metaType."""
        return 1 << (self.meta_type & 0x0F)

    @property
    def hit_patterns(self) -> tuple[int, ...]:
        """Per AGET, a 72-bit integer with bit ``c`` set when channel ``c`` has items."""
        patterns = [0] * N_AGETS
        for item in self.items:
            patterns[item.aget] |= 1 << item.channel
        return tuple(patterns)

    @property
    def multiplicities(self) -> tuple[int, ...]:
        """Per AGET, how many channels have items."""
        return tuple(pattern.bit_count() for pattern in self.hit_patterns)


def _check(name: str, value: int, limit: int) -> None:
    """Refuse a field value that does not fit its bits."""
    if not 0 <= value < limit:
        raise ValueError(f"{name} {value} is out of range 0-{limit - 1}")


def _check_item(item: Item) -> None:
    """Refuse an item that does not fit the item bit fields."""
    _check("AGET", item.aget, N_AGETS)
    _check("channel", item.channel, N_CHANNELS)
    _check("time bucket", item.bucket, N_BUCKETS)
    _check("sample", item.sample, MAX_SAMPLE + 1)


def _check_header(frame: Frame) -> None:
    """Refuse header fields that do not fit their bytes."""
    if frame.meta_type & 0xF0:
        raise ValueError(f"metaType {frame.meta_type:#04x}: only big-endian, non-blob frames")
    for name, value, limit in (("eventIdx", frame.event_idx, 1 << 32),
                               ("eventTime", frame.event_time, 1 << 48),
                               ("coboIdx", frame.cobo_idx, 256), ("asadIdx", frame.asad_idx, 256),
                               ("dataSource", frame.data_source, 256),
                               ("revision", frame.revision, 256), ("status", frame.status, 256),
                               ("readOffset", frame.read_offset, 1 << 16)):
        _check(name, value, limit)
    if frame.header_blocks * frame.block_size < HEADER_BYTES or frame.header_blocks >= 1 << 16:
        raise ValueError(f"headerSize {frame.header_blocks} blocks of {frame.block_size} bytes "
                         f"cannot hold the {HEADER_BYTES}-byte header")


def _encode_items(frame: Frame) -> bytes:
    """Pack the items of ``frame`` as its frameType says."""
    for item in frame.items:
        _check_item(item)
    if frame.frame_type == FrameType.PARTIAL:
        words = [(i.aget << 30) | (i.channel << 23) | (i.bucket << 14) | i.sample
                 for i in frame.items]
        return struct.pack(f">{len(words)}I", *words)
    seen = [0] * N_AGETS
    for number, item in enumerate(frame.items):
        # Full readout has no channel or bucket bits: only the order carries them.
        expected = divmod(seen[item.aget], N_CHANNELS)[::-1]
        if (item.channel, item.bucket) != expected:
            raise ValueError(f"full-readout item {number} of AGET {item.aget} must be channel "
                             f"{expected[0]} bucket {expected[1]}, not {item.channel} "
                             f"{item.bucket}")
        seen[item.aget] += 1
    return struct.pack(f">{len(frame.items)}H", *((i.aget << 14) | i.sample for i in frame.items))


def encode_frame(frame: Frame) -> bytes:
    """Return the bytes of ``frame``, header and items padded to whole blocks.

    Parameters
    ----------
    frame
        The frame; its hit patterns and multiplicities are computed from its items.

    Returns
    -------
    bytes
        A whole number of blocks, ready to be sent or appended to a ``.graw`` file.

    Raises
    ------
    ValueError
        When a field does not fit its bits, or full-readout items are out of order.
    """
    frame_type = FrameType(frame.frame_type)
    _check_header(frame)
    block = frame.block_size
    header_bytes = frame.header_blocks * block
    items = _encode_items(frame)
    blocks = -(-(header_bytes + len(items)) // block)
    _check("frameSize", blocks, 1 << 24)
    header = _HEADER.pack(
        frame.meta_type, blocks.to_bytes(3, "big"), frame.data_source, frame_type,
        frame.revision, frame.header_blocks, _ITEM_SIZE[frame_type], len(frame.items),
        frame.event_time.to_bytes(6, "big"), frame.event_idx, frame.cobo_idx, frame.asad_idx,
        frame.read_offset, frame.status,
        b"".join(p.to_bytes(9, "big") for p in frame.hit_patterns),
        struct.pack(">4H", *frame.multiplicities))
    out = bytearray(blocks * block)
    out[:HEADER_BYTES] = header
    out[header_bytes:header_bytes + len(items)] = items
    return bytes(out)


def frame_length(prefix: bytes) -> int:
    """Return the size in bytes of the frame that starts with ``prefix`` (its first 4 bytes).

    Raises
    ------
    GrawError
        When metaType is not one of big-endian, non-blob frames, or the frame is too
        short to hold a header (offsets count from the frame's start).
    """
    if len(prefix) < 4:
        raise GrawError(f"truncated frame: {len(prefix)} bytes left, a frame starts with 4", 0)
    meta_type = prefix[0]
    if meta_type & 0xF0:
        raise GrawError(f"bad metaType {meta_type:#04x}: not a big-endian, non-blob frame", 0)
    length = int.from_bytes(prefix[1:4], "big") << (meta_type & 0x0F)
    if length < HEADER_BYTES:
        raise GrawError(f"frameSize {int.from_bytes(prefix[1:4], 'big')} blocks ({length} bytes) "
                        f"is smaller than a frame header ({HEADER_BYTES} bytes)", 1)
    return length


def _decode_items(view: memoryview, start: int, frame_type: FrameType,
                  count: int) -> list[Item]:
    """Unpack and check ``count`` items at ``start``; offsets count from the frame's start."""
    if frame_type == FrameType.PARTIAL:
        words = struct.unpack_from(f">{count}I", view, start)
        items = [Item(w >> 30, (w >> 23) & 0x7F, (w >> 14) & 0x1FF, w & 0xFFF) for w in words]
        bad = next((n for n, w in enumerate(words)
                    if (w >> 23) & 0x7F >= N_CHANNELS or w & 0x3000), None)
    else:
        words = struct.unpack_from(f">{count}H", view, start)
        seen = [0] * N_AGETS
        items = []
        for w in words:
            bucket, channel = divmod(seen[w >> 14], N_CHANNELS)
            seen[w >> 14] += 1
            items.append(Item(w >> 14, channel, bucket, w & 0xFFF))
        bad = next((n for n, (w, i) in enumerate(zip(words, items, strict=True))
                    if i.bucket >= N_BUCKETS or w & 0x3000), None)
    if bad is not None:
        item = items[bad]
        raise GrawError(f"item {bad} is malformed (word {words[bad]:#x}: AGET {item.aget}, "
                        f"channel {item.channel} of 0-{N_CHANNELS - 1}, bucket {item.bucket} "
                        f"of 0-{N_BUCKETS - 1}, bits 13-12 must be 0)",
                        start + bad * _ITEM_SIZE[frame_type])
    return items


def decode_frame(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Frame, int]:
    """Read the frame that starts at ``offset`` in ``buf``.

    Parameters
    ----------
    buf
        Bytes holding at least one whole frame from ``offset`` on.
    offset
        Where the frame starts.

    Returns
    -------
    tuple of Frame and int
        The frame and the offset just past it (past its padding).

    Raises
    ------
    GrawError
        When the frame is truncated or malformed; its offset is where in ``buf``.
    """
    view = memoryview(buf)
    try:
        return _decode(view[offset:]), offset + frame_length(view[offset:offset + 4])
    except GrawError as exc:
        raise exc.shifted(offset) from None


def _check_header_size(meta_type: int, header_blocks: int, length: int) -> int:
    """Return the header's bytes; refuse a headerSize outside the header and frame sizes."""
    header_bytes = header_blocks << (meta_type & 0x0F)
    if not HEADER_BYTES <= header_bytes <= length:
        raise GrawError(f"headerSize {header_blocks} blocks ({header_bytes} bytes) must be "
                        f"between {HEADER_BYTES} bytes and frameSize ({length} bytes)", 8)
    return header_bytes


def _check_items_fit(frame_type: FrameType, item_size: int, n_items: int, header_bytes: int,
                     length: int) -> None:
    """Refuse an itemSize other than the frameType's, or items that overflow the frame."""
    if item_size != _ITEM_SIZE[frame_type]:
        raise GrawError(f"itemSize {item_size} does not match frameType {frame_type} "
                        f"({_ITEM_SIZE[frame_type]}-byte items)", 10)
    if header_bytes + n_items * item_size > length:
        raise GrawError(f"nItems {n_items} of {item_size} bytes do not fit in frameSize "
                        f"({length} bytes) after the {header_bytes}-byte header", 12)


def _decode(view: memoryview) -> Frame:
    """Decode the frame at the start of ``view`` (offsets in errors from there)."""
    length = frame_length(view[:4])
    if len(view) < length:
        raise GrawError(f"truncated frame: frameSize says {length} bytes, only {len(view)} left",
                        0)
    (meta_type, _, data_source, frame_type, revision, header_blocks, item_size, n_items,
     event_time, event_idx, cobo_idx, asad_idx, read_offset, status, _, _) = \
        _HEADER.unpack_from(view)
    header_bytes = _check_header_size(meta_type, header_blocks, length)
    if frame_type not in _ITEM_SIZE:
        raise GrawError(f"unknown frameType {frame_type} (1 partial, 2 full readout)", 5)
    frame_type = FrameType(frame_type)
    _check_items_fit(frame_type, item_size, n_items, header_bytes, length)
    items = _decode_items(view, header_bytes, frame_type, n_items)
    return Frame(event_idx, cobo_idx, asad_idx, int.from_bytes(event_time, "big"), items,
                 frame_type, data_source, revision, read_offset, status, meta_type,
                 header_blocks)


def _read(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of the stream."""
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def iter_frames(source: str | os.PathLike | BinaryIO) -> Iterator[Frame]:
    """Yield every frame of a ``.graw`` file or binary stream, one at a time.

    Parameters
    ----------
    source
        A path, or a binary stream positioned at a frame's start.

    Raises
    ------
    GrawError
        At the first truncated or malformed frame, naming the file and the byte offset.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            yield from _iter_stream(stream, os.fspath(source))
    else:
        yield from _iter_stream(source, getattr(source, "name", None))


def _iter_stream(stream: BinaryIO, name: str | None) -> Iterator[Frame]:
    """Yield the frames of ``stream``, naming ``name`` in errors."""
    offset = 0
    while prefix := _read(stream, 4):
        try:
            length = frame_length(prefix)
            frame = _decode(memoryview(prefix + _read(stream, length - 4)))
        except GrawError as exc:
            raise exc.shifted(offset, name) from None
        yield frame
        offset += length


#: The bytes of a header a scan reads: metaType to asadIdx (eventIdx, coboIdx, asadIdx
#: are bytes 22-27); the rest of the frame is skipped by its frameSize.
SCAN_BYTES = 28
_SCANNED = struct.Struct(">B3sBHBHHI6sIBB")  # the first SCAN_BYTES bytes of a header


@dataclass(slots=True)
class AsadCount:
    """The frames of one (CoBo, AsAd) in a file: how many, the first's and the last's event."""

    frames: int
    first_event: int
    last_event: int


@dataclass(slots=True)
class HeaderScan:
    """What the frame headers of one file say, read without the frames' items.

    ``counts`` holds, per ``(coboIdx, asadIdx)`` in the order first met, the CoBo
    frames (frameType 1 or 2); ``other_frames`` counts frames of other types (the
    MuTAnT's), checked only for their sizes. ``size`` is the bytes scanned, and
    ``error`` the first truncated or malformed frame, if any (the scan stops there,
    the counts are those of the frames before; offsets count from the start).
    """

    size: int
    counts: dict[tuple[int, int], AsadCount] = field(default_factory=dict)
    other_frames: int = 0
    error: GrawError | None = None

    @property
    def frames(self) -> int:
        """Every frame read, CoBo frames and others."""
        return sum(c.frames for c in self.counts.values()) + self.other_frames

    @property
    def scanned_bytes(self) -> int:
        """Where the scan stopped: the size, or the offset of the bad frame."""
        return self.size if self.error is None else self.error.offset


def check_scanned_header(head: bytes, left: int) -> tuple[int, tuple[int, int, int] | None]:
    """Check the first bytes of a frame for a header scan; return its length and what it is.

    Parameters
    ----------
    head
        The frame's first ``min(SCAN_BYTES, left)`` bytes.
    left
        The bytes of the file from the frame's start on.

    Returns
    -------
    tuple
        The frame's size in bytes, and ``(eventIdx, coboIdx, asadIdx)`` for a CoBo
        frame (frameType 1 or 2), None for any other frame type.

    Raises
    ------
    GrawError
        When the frame is truncated, or its metaType, frameSize, headerSize (any
        frame) or itemSize and nItems (CoBo frames) are malformed: the same checks
        and words as :func:`decode_frame`, offsets from the frame's start.
    """
    length = frame_length(head[:4])
    if length > left:
        raise GrawError(f"truncated frame: frameSize says {length} bytes, only {left} left", 0)
    if len(head) < SCAN_BYTES:  # the file shrank under the scan
        raise GrawError(f"truncated frame: only {len(head)} bytes of its header could be "
                        "read", 0)
    (meta_type, _, _, frame_type, _, header_blocks, item_size, n_items, _, event_idx,
     cobo_idx, asad_idx) = _SCANNED.unpack_from(head)
    header_bytes = _check_header_size(meta_type, header_blocks, length)
    if frame_type not in _ITEM_SIZE:
        return length, None
    _check_items_fit(FrameType(frame_type), item_size, n_items, header_bytes, length)
    return length, (event_idx, cobo_idx, asad_idx)


def scan_steps(size: int) -> Generator[tuple[int, int], bytes, HeaderScan]:
    """Scan ``size`` bytes of frames without I/O: yields ``(offset, count)`` reads, is sent
    the bytes read, and returns the :class:`HeaderScan` (see :func:`scan_headers`).

    Any transport drives it: a file's ``pread``, reads at offsets over SFTP.
    """
    scan = HeaderScan(size)
    counts = scan.counts
    offset = 0
    while offset < size:
        head = yield offset, min(SCAN_BYTES, size - offset)
        try:
            length, what = check_scanned_header(head, size - offset)
        except GrawError as exc:
            scan.error = exc.shifted(offset)
            return scan
        if what is None:
            scan.other_frames += 1
        else:
            event_idx, cobo_idx, asad_idx = what
            count = counts.get((cobo_idx, asad_idx))
            if count is None:
                counts[cobo_idx, asad_idx] = AsadCount(1, event_idx, event_idx)
            else:
                count.frames += 1
                count.last_event = event_idx
        offset += length
    return scan


_FAST = struct.Struct(">IBHBHHI6xIBB")  # the SCAN_BYTES of a header, frameSize in the first


def _scan_fd(fd: int, base: int, size: int) -> HeaderScan:
    """:func:`scan_steps` for a file descriptor, written out: the checks of
    :func:`check_scanned_header` inline, which is asked only to say what is wrong."""
    scan = HeaderScan(size)
    counts = scan.counts
    unpack, pread, item_sizes = _FAST.unpack, os.pread, (0, 4, 2)
    offset = 0
    while offset < size:
        left = size - offset
        head = pread(fd, SCAN_BYTES if left >= SCAN_BYTES else left, base + offset)
        if len(head) == SCAN_BYTES:
            (word, _, frame_type, _, header_blocks, item_size, n_items, event_idx, cobo_idx,
             asad_idx) = unpack(head)
            shift = (word >> 24) & 0x0F
            length = (word & 0xFFFFFF) << shift
            header_bytes = header_blocks << shift
            if (not word >> 28 and HEADER_BYTES <= length <= left
                    and HEADER_BYTES <= header_bytes <= length):
                if frame_type not in (1, 2):
                    scan.other_frames += 1
                    offset += length
                    continue
                if (item_size == item_sizes[frame_type]
                        and header_bytes + n_items * item_size <= length):
                    count = counts.get((cobo_idx, asad_idx))
                    if count is None:
                        counts[cobo_idx, asad_idx] = AsadCount(1, event_idx, event_idx)
                    else:
                        count.frames += 1
                        count.last_event = event_idx
                    offset += length
                    continue
        try:
            check_scanned_header(head, left)
        except GrawError as exc:
            scan.error = exc.shifted(offset)
            return scan
        raise AssertionError(f"byte {offset}: the scan's checks disagree ({head.hex()})")
    return scan


def scan_headers(source: str | os.PathLike | BinaryIO, *, size: int | None = None,
                 strict: bool = True) -> HeaderScan:
    """Count the frames of a ``.graw`` file per (CoBo, AsAd), reading only their headers.

    Each frame costs one read of :data:`SCAN_BYTES` bytes at its offset (``pread``
    on a file); its frameSize leads to the next, so a 1 GiB file of 8 kB frames
    reads about 3.5 MB.

    Parameters
    ----------
    source
        A path, or a binary stream: scanned from its current position.
    size
        How many bytes to scan; to the end when None.
    strict
        Raise at the first truncated or malformed frame (True), or return what the
        frames before it say, with :attr:`HeaderScan.error` set (False).

    Returns
    -------
    HeaderScan
        The counts, per (coboIdx, asadIdx): frames, first and last eventIdx.

    Raises
    ------
    GrawError
        (When ``strict``.) At the first truncated or malformed frame, naming the file
        and the byte offset.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            return _scan_stream(stream, os.fspath(source), size, strict)
    return _scan_stream(source, getattr(source, "name", None), size, strict)


def _scan_stream(stream: BinaryIO, name: str | None, size: int | None,
                 strict: bool) -> HeaderScan:
    """Drive :func:`scan_steps` over ``stream`` from its position; name ``name`` in errors."""
    base = stream.tell()
    if size is None:
        size = stream.seek(0, os.SEEK_END) - base
    try:
        fd = stream.fileno()
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        scan = _scan_fd(fd, base, size)
    else:
        def read(offset: int, count: int) -> bytes:
            stream.seek(base + offset)
            return _read(stream, count)

        steps = scan_steps(size)
        try:
            request = next(steps)
            while True:
                request = steps.send(read(*request))
        except StopIteration as done:
            scan = done.value
    if scan.error is not None:
        scan.error = scan.error.shifted(0, name)
        if strict:
            raise scan.error
    return scan


def make_event(cobo_idx: int, asad_idx: int, event_idx: int, hits: int, *,
               event_time: int = 0, buckets_per_hit: int = 4, seed: int = 0) -> Frame:
    """Make a plausible partial-readout frame: ``hits`` channels, each with a short pulse.

    Parameters
    ----------
    cobo_idx, asad_idx, event_idx
        Which board and event; with ``seed`` they fix the (pseudo-random) content.
    hits
        How many distinct channels fire (at most 4 x 68).
    event_time
        The eventTime field.
    buckets_per_hit
        Time buckets read around each pulse.
    seed
        Changes the content of every event.

    Returns
    -------
    Frame
        The same frame for the same arguments.
    """
    if not 0 <= hits <= N_AGETS * N_CHANNELS:
        raise ValueError(f"hits {hits} is out of range 0-{N_AGETS * N_CHANNELS}")
    _check("buckets_per_hit", buckets_per_hit, N_BUCKETS + 1)
    rng = random.Random(f"{seed}:{cobo_idx}:{asad_idx}:{event_idx}")  # noqa: S311 - test data
    items = []
    for pad in sorted(rng.sample(range(N_AGETS * N_CHANNELS), hits)):
        first = rng.randrange(N_BUCKETS - buckets_per_hit + 1)
        height = rng.randrange(100, 3500)
        for step in range(buckets_per_hit):
            # A rise and fall over the buckets read, on a baseline of about 250.
            shape = 1 - abs(2 * step / max(buckets_per_hit - 1, 1) - 1)
            sample = min(MAX_SAMPLE, 250 + int(height * shape) + rng.randrange(8))
            items.append(Item(pad // N_CHANNELS, pad % N_CHANNELS, first + step, sample))
    return Frame(event_idx, cobo_idx, asad_idx, event_time, items, data_source=cobo_idx)
