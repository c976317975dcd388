"""GET frames: the byte layout of the protocol table, round trips, and malformed input."""

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attpcdaq.get import (
    Frame,
    FrameType,
    GetError,
    GrawError,
    Item,
    decode_frame,
    encode_frame,
    frame_length,
    iter_frames,
    make_event,
)
from attpcdaq.get.graw import SCAN_BYTES, AsadCount, check_scanned_header, scan_headers

PARTIAL_ITEMS = st.lists(st.builds(Item, st.integers(0, 3), st.integers(0, 67),
                                   st.integers(0, 511), st.integers(0, 4095)), max_size=40)


@st.composite
def full_items(draw):
    """Full-readout items in readout order: per bucket, per channel, the AGETs read."""
    agets = draw(st.lists(st.integers(0, 3), unique=True, max_size=4))
    buckets = draw(st.integers(0, 2))
    samples = draw(st.lists(st.integers(0, 4095), min_size=buckets * 68 * len(agets),
                            max_size=buckets * 68 * len(agets)))
    order = [(a, c, b) for b in range(buckets) for c in range(68) for a in agets]
    return [Item(a, c, b, s) for (a, c, b), s in zip(order, samples, strict=True)]


def frames(items, frame_type):
    """Frames with any header values that fit their fields."""
    return st.builds(
        Frame, event_idx=st.integers(0, 2**32 - 1), cobo_idx=st.integers(0, 255),
        asad_idx=st.integers(0, 3), event_time=st.integers(0, 2**48 - 1), items=items,
        frame_type=st.just(frame_type), data_source=st.integers(0, 255),
        revision=st.sampled_from([4, 5]), read_offset=st.integers(0, 511),
        status=st.integers(0, 255), meta_type=st.sampled_from([6, 7, 8]),
        header_blocks=st.sampled_from([4, 5]))


ANY_FRAME = frames(PARTIAL_ITEMS, FrameType.PARTIAL) | frames(full_items(), FrameType.FULL)


@given(ANY_FRAME, st.binary(max_size=8))
def test_frames_round_trip_at_any_offset(frame, before):
    data = encode_frame(frame)
    assert len(data) % frame.block_size == 0
    assert frame_length(data[:4]) == len(data)
    assert decode_frame(before + data + b"\xff", len(before)) == (frame, len(before) + len(data))


@settings(max_examples=30)
@given(st.lists(ANY_FRAME, max_size=4))
def test_iter_frames_reads_a_stream_of_frames(frame_list):
    stream = io.BytesIO(b"".join(encode_frame(f) for f in frame_list))
    assert list(iter_frames(stream)) == frame_list


def test_header_layout_is_the_protocol_table():
    items = [Item(0, 0, 1, 0x123), Item(0, 5, 2, 7), Item(3, 67, 511, 4095)]
    frame = Frame(event_idx=0x01020304, cobo_idx=9, asad_idx=2, event_time=0x0A0B0C0D0E0F,
                  items=items, data_source=7, read_offset=0x1122, status=0)
    data = encode_frame(frame)
    assert len(data) == 320  # 256-byte header + 12 bytes of items -> 5 blocks of 64
    assert data[:16] == bytes.fromhex("06 000005 07 0001 05 0004 0004 00000003")
    assert data[16:31] == bytes.fromhex("0A0B0C0D0E0F 01020304 09 02 1122 00")
    hit = [int.from_bytes(data[31 + 9 * a:40 + 9 * a], "big") for a in range(4)]
    assert hit == [0b100001, 0, 0, 1 << 67]
    assert struct.unpack(">4H", data[67:75]) == (2, 0, 0, 1)
    assert data[75:256] == bytes(181) and data[268:] == bytes(52)
    words = struct.unpack(">3I", data[256:268])
    assert words[0] == (1 << 14) | 0x123
    assert words[2] == (3 << 30) | (67 << 23) | (511 << 14) | 4095


def test_full_readout_items_are_two_bytes_in_order():
    items = [Item(a, c, 0, c) for c in range(68) for a in (1, 2)]
    data = encode_frame(Frame(0, 0, 0, items=items, frame_type=FrameType.FULL))
    assert data[5:7] == b"\x00\x02" and data[10:12] == b"\x00\x02"
    assert struct.unpack(">2H", data[256:260]) == ((1 << 14) | 0, (2 << 14) | 0)
    shuffled = items[2:] + items[:2]
    with pytest.raises(ValueError, match="must be channel 0 bucket 0"):
        encode_frame(Frame(0, 0, 0, items=shuffled, frame_type=FrameType.FULL))


def test_make_event_is_reproducible_and_plausible():
    frame = make_event(3, 1, 42, hits=10, event_time=99)
    assert (frame.cobo_idx, frame.asad_idx, frame.event_idx, frame.event_time) == (3, 1, 42, 99)
    assert sum(frame.multiplicities) == 10 and len(frame.items) == 40
    assert make_event(3, 1, 42, hits=10, event_time=99) == frame
    assert make_event(3, 1, 43, hits=10).items != frame.items
    assert decode_frame(encode_frame(frame))[0] == frame
    with pytest.raises(ValueError, match="hits 273"):
        make_event(0, 0, 0, hits=273)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("asad_idx", 256, "asadIdx 256"), ("event_time", 2**48, "eventTime"),
    ("items", [Item(0, 68, 0, 0)], "channel 68"), ("items", [Item(0, 0, 0, 4096)], "sample"),
    ("meta_type", 0x86, "metaType"), ("header_blocks", 1, "headerSize 1"),
])
def test_encode_refuses_values_that_do_not_fit(field, value, message):
    frame = Frame(1, 2, 3)
    setattr(frame, field, value)
    with pytest.raises(ValueError, match=message):
        encode_frame(frame)


GOOD = encode_frame(Frame(5, 1, 2, items=[Item(1, 2, 3, 4)] * 3))


def patched(at: int, new: bytes, data: bytes = GOOD) -> bytes:
    """Return ``data`` with ``new`` written at byte ``at``."""
    return data[:at] + new + data[at + len(new):]


@pytest.mark.parametrize(("data", "offset", "message"), [
    (patched(0, b"\x86"), 0, "bad metaType 0x86"),
    (patched(1, b"\x00\x00\x01"), 1, "frameSize 1 blocks .64 bytes. is smaller than a frame"),
    (patched(1, b"\x00\x00\x00"), 1, "frameSize 0"),
    (patched(8, b"\x00\x06"), 8, "headerSize 6 blocks .384 bytes. must be between"),
    (patched(8, b"\x00\x01"), 8, "headerSize 1 blocks"),
    (patched(5, b"\x00\x03"), 5, "unknown frameType 3"),
    (patched(10, b"\x00\x02"), 10, "itemSize 2 does not match frameType 1"),
    (patched(12, b"\x00\x00\x00\x11"), 12, "nItems 17 of 4 bytes do not fit"),
    (patched(260, struct.pack(">I", 68 << 23)), 260, "item 1 is malformed .* channel 68"),
    (patched(264, struct.pack(">I", 0x1000)), 264, "item 2 is malformed"),
    (GOOD[:-1], 0, "truncated frame: frameSize says 320 bytes, only 319 left"),
    (GOOD[:3], 0, "truncated frame: 3 bytes left"),
])
def test_malformed_frames_say_what_and_where(data, offset, message):
    with pytest.raises(GrawError, match=message) as caught:
        decode_frame(b"\x00" * 64 + data, 64)
    assert caught.value.offset == 64 + offset
    assert f"byte {64 + offset}: " in str(caught.value)
    assert isinstance(caught.value, GetError)


def test_full_readout_past_bucket_511_is_malformed():
    words = struct.pack(">H", 5) * (68 * 512 + 1)
    header = bytearray(GOOD[:256])
    blocks = (256 + len(words) + 63) // 64
    header[1:4] = blocks.to_bytes(3, "big")
    header[5:7], header[10:12] = b"\x00\x02", b"\x00\x02"
    header[12:16] = (68 * 512 + 1).to_bytes(4, "big")
    data = bytes(header) + words + bytes(blocks * 64 - 256 - len(words))
    with pytest.raises(GrawError, match=f"item {68 * 512} is malformed .* bucket 512"):
        decode_frame(data)


@settings(max_examples=40)
@given(st.integers(1, len(GOOD) * 2 - 1).filter(lambda cut: cut != len(GOOD)))
def test_a_file_cut_anywhere_inside_a_frame_is_truncated(cut):
    stream = io.BytesIO((GOOD * 2)[:cut])
    frames_read = []
    with pytest.raises(GrawError, match="truncated") as caught:
        frames_read.extend(iter_frames(stream))
    assert len(frames_read) == cut // len(GOOD)
    assert caught.value.offset == len(GOOD) * len(frames_read)


def test_iter_frames_names_the_file_and_offset(tmp_path):
    path = tmp_path / "CoBo_AsAd2_2017-03-01T15:30:12.345_0000.graw"
    path.write_bytes(GOOD + GOOD + patched(0, b"\x16"))
    reader = iter_frames(path)
    assert next(reader).event_idx == 5 and next(reader).cobo_idx == 1
    with pytest.raises(GrawError) as caught:
        next(reader)
    assert str(caught.value) == (f"{path}: byte 640: bad metaType 0x16: not a big-endian, "
                                 "non-blob frame")


def test_an_empty_file_has_no_frames(tmp_path):
    (tmp_path / "empty.graw").write_bytes(b"")
    assert list(iter_frames(tmp_path / "empty.graw")) == []


# The header scan ---------------------------------------------------------------------------

class CountingStream(io.BytesIO):
    """A stream that counts the bytes read from it (and has no file descriptor)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0
        self.reads = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        self.reads += 1
        return data


def expected_counts(frame_list):
    """What a scan must find, from the frames themselves."""
    counts = {}
    for frame in frame_list:
        key = frame.cobo_idx, frame.asad_idx
        if key in counts:
            counts[key] = AsadCount(counts[key].frames + 1, counts[key].first_event,
                                    frame.event_idx)
        else:
            counts[key] = AsadCount(1, frame.event_idx, frame.event_idx)
    return counts


@settings(max_examples=40)
@given(st.lists(ANY_FRAME, max_size=6))
def test_the_scan_counts_what_the_frames_say_reading_only_headers(frame_list):
    data = b"".join(encode_frame(f) for f in frame_list)
    stream = CountingStream(data)
    scan = scan_headers(stream)
    assert scan.counts == expected_counts(frame_list)
    assert list(scan.counts) == list(dict.fromkeys((f.cobo_idx, f.asad_idx) for f in frame_list))
    assert (scan.frames, scan.other_frames, scan.size, scan.error) == (
        len(frame_list), 0, len(data), None)
    assert stream.bytes_read <= SCAN_BYTES * len(frame_list)
    assert stream.reads == len(frame_list)


def test_scan_of_a_file_reads_28_bytes_per_frame_by_pread(tmp_path):
    frame_list = [make_event(c, a, e, hits=e % 30, buckets_per_hit=1 + e % 40)
                  for e in range(60) for c in (0, 3) for a in range(4)]
    path = tmp_path / "CoBo0_AsAd0_2026-11-24T10:00:00.000_0000.graw"
    path.write_bytes(b"".join(encode_frame(f) for f in frame_list))
    scan = scan_headers(path)
    assert scan.counts == expected_counts(frame_list)
    assert scan.counts[3, 2] == AsadCount(60, 0, 59)
    assert scan.scanned_bytes == path.stat().st_size
    # From a stream's position on, and no further than asked.
    with open(path, "rb") as stream:
        stream.seek(len(encode_frame(frame_list[0])))
        assert scan_headers(stream).frames == len(frame_list) - 1
        stream.seek(0)
        assert scan_headers(stream, size=len(encode_frame(frame_list[0]))).frames == 1


def test_a_truncated_last_frame_names_the_file_and_offset(tmp_path):
    path = tmp_path / "CoBo1_AsAd2_2026-11-24T10:00:00.000_0000.graw"
    path.write_bytes(GOOD * 3 + GOOD[:100])
    with pytest.raises(GrawError) as caught:
        scan_headers(path)
    assert str(caught.value) == (f"{path}: byte 960: truncated frame: frameSize says 320 "
                                 "bytes, only 100 left")
    assert caught.value.offset == 960 and caught.value.source == str(path)
    # Not strict: the counts of the frames before, and the error.
    scan = scan_headers(path, strict=False)
    assert scan.counts == {(1, 2): AsadCount(3, 5, 5)}
    assert str(scan.error) == str(caught.value) and scan.scanned_bytes == 960
    # A cut inside the first 4 bytes of a frame too.
    path.write_bytes(GOOD + GOOD[:3])
    with pytest.raises(GrawError, match=r"byte 320: truncated frame: 3 bytes left"):
        scan_headers(path)


@pytest.mark.parametrize(("data", "offset", "message"), [
    (patched(0, b"\x86"), 0, "bad metaType 0x86: not a big-endian, non-blob frame"),
    (patched(1, b"\x00\x00\x01"), 1, "frameSize 1 blocks (64 bytes) is smaller than a frame "
     "header (75 bytes)"),
    (patched(8, b"\x00\x06"), 8, "headerSize 6 blocks (384 bytes) must be between 75 bytes "
     "and frameSize (320 bytes)"),
    (patched(10, b"\x00\x02"), 10, "itemSize 2 does not match frameType 1 (4-byte items)"),
    (patched(12, b"\x00\x00\x00\x11"), 12, "nItems 17 of 4 bytes do not fit in frameSize "
     "(320 bytes) after the 256-byte header"),
])
def test_a_malformed_header_names_the_file_and_offset(tmp_path, data, offset, message):
    path = tmp_path / "CoBo1_AsAd2_2026-11-24T10:00:00.000_0000.graw"
    path.write_bytes(GOOD + data + GOOD)
    with pytest.raises(GrawError) as caught:
        scan_headers(path)
    assert str(caught.value) == f"{path}: byte {320 + offset}: {message}"
    with pytest.raises(GrawError) as decoded:
        list(iter_frames(path))  # the same words as the full decoder
    assert str(decoded.value) == str(caught.value)
    assert scan_headers(path, strict=False).counts == {(1, 2): AsadCount(1, 5, 5)}


def test_frames_of_other_types_are_counted_apart(tmp_path):
    mutant = bytearray(GOOD)
    mutant[5:7] = b"\x00\x08"  # the emulated MuTAnT's frameType: not a CoBo frame
    mutant[10:12] = b"\x00\x07"  # its other fields are not the CoBo's
    scan = scan_headers(io.BytesIO(bytes(mutant) * 2 + GOOD))
    assert (scan.other_frames, scan.frames, scan.counts) == (2, 3, {(1, 2): AsadCount(1, 5, 5)})


def test_check_scanned_header_says_what_a_frame_is():
    assert check_scanned_header(GOOD[:SCAN_BYTES], len(GOOD)) == (320, (5, 1, 2))
    with pytest.raises(GrawError, match="only 10 bytes of its header"):
        check_scanned_header(GOOD[:10], len(GOOD))
