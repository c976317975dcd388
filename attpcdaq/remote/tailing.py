"""The end of a file, read in large blocks backwards from its end (never byte by byte)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["BLOCK_SIZE", "MAX_TAIL_BYTES", "tail_bytes"]

#: One read per block: a 50-line log tail is one read (one round trip over SFTP).
BLOCK_SIZE = 64 * 1024
#: Stop going back after this much, even if the file has fewer line breaks.
MAX_TAIL_BYTES = 16 * 1024 * 1024


async def read_exactly(read_at: Callable[[int, int], Awaitable[bytes]], offset: int,
                       size: int) -> bytes:
    """Read ``size`` bytes at ``offset``, looping over short reads, fewer only at end of file."""
    parts: list[bytes] = []
    while size > 0:
        chunk = await read_at(offset, size)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(parts)


async def tail_bytes(read_at: Callable[[int, int], Awaitable[bytes]], size: int, lines: int,
                     *, block: int = BLOCK_SIZE, cap: int = MAX_TAIL_BYTES) -> bytes:
    """Return the last ``lines`` lines of a file of ``size`` bytes read through ``read_at``.

    Parameters
    ----------
    read_at
        ``await read_at(offset, n)`` returns up to ``n`` bytes from ``offset``.
    size
        The file's size.
    lines
        How many lines; a last line without a line break counts as one.
    block
        Bytes per read.
    cap
        Read no more than this from the end, so one huge line cannot load the whole file.

    Returns
    -------
    bytes
        The lines, each with its line break.
    """
    if lines <= 0 or size <= 0:
        return b""
    data = b""
    end = size
    # More than `lines` line breaks means the oldest wanted line is complete.
    while end > 0 and data.count(b"\n") <= lines and size - end < cap:
        start = max(0, end - block)
        data = await read_exactly(read_at, start, end - start) + data
        end = start
    return b"".join(data.splitlines(keepends=True)[-lines:])
