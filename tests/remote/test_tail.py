"""tail through both transports: the right lines, read in blocks from the end."""

import pytest

from attpcdaq.remote import LocalHost, RemoteFileNotFound
from attpcdaq.remote.tailing import tail_bytes


@pytest.fixture
def big_log(tmp_path):
    path = tmp_path / "dataRouter.log"
    with open(path, "w") as log:
        for i in range(200_000):  # about 7 MB
            log.write(f"{i:06d} frame received from CoBo[{i % 10}] é\n")
    return path


async def test_tail_of_a_big_file(host, big_log):
    text = await host.tail(str(big_log), 50)
    expected = "".join(f"{i:06d} frame received from CoBo[{i % 10}] é\n"
                       for i in range(200_000 - 50, 200_000))
    assert text == expected


async def test_tail_counts(host, tmp_path):
    path = tmp_path / "short.log"
    path.write_text("one\ntwo\nthree")  # no line break at the end
    assert await host.tail(str(path), 1) == "three"
    assert await host.tail(str(path), 2) == "two\nthree"
    assert await host.tail(str(path), 10) == "one\ntwo\nthree"
    assert await host.tail(str(path), 0) == ""
    (tmp_path / "empty.log").write_text("")
    assert await host.tail(str(tmp_path / "empty.log")) == ""


async def test_tail_missing_file(host, tmp_path):
    with pytest.raises(RemoteFileNotFound, match=r"absent\.log") as caught:
        await host.tail(str(tmp_path / "absent.log"))
    assert host.name in str(caught.value)


async def test_tail_reads_blocks_not_bytes(big_log):
    reads = []

    class Counting(LocalHost):
        def _reader(self, path):
            inner = super()._reader(path)

            class Wrap:
                async def __aenter__(self):
                    size, read_at = await inner.__aenter__()

                    async def counted(offset, n):
                        reads.append(n)
                        return await read_at(offset, n)

                    return size, counted

                async def __aexit__(self, *exc):
                    return await inner.__aexit__(*exc)

            return Wrap()

    await Counting().tail(str(big_log), 50)
    assert len(reads) == 1 and reads[0] > 1000
    reads.clear()
    await Counting().tail(str(big_log), 5000)  # ~180 KB: a few 64 KiB blocks
    assert 2 <= len(reads) <= 4


async def test_tail_of_one_huge_line_is_capped():
    data = b"x" * 1000

    async def read_at(offset, n):
        return data[offset:offset + n]

    assert await tail_bytes(read_at, len(data), 3, block=100, cap=300) == b"x" * 300
