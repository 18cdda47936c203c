"""Split a block of complete lines into an Arrow batch without a Python object per line.

The block is handed to Arrow as it is (zero copy): the offsets are the newline positions,
so each string keeps its trailing newline, which every format ignores. Lines that cannot
go to DuckDB (over the size limit, not UTF-8) are taken out as rejects; that slow path
only runs for blocks that have such a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `ingest` may never need them (start-up time)
    import numpy as np
    import pyarrow as pa

MAX_LINE = 1 << 20  # 1 MiB
REJECT_KEEP = 1024  # bytes of a rejected line that are kept
CHUNK_ROWS = 16384  # rows per Arrow record batch


@dataclass(frozen=True)
class RawReject:
    """A line rejected before parsing; `index` counts lines from the block's start."""

    index: int
    reason: str
    head: str


@dataclass
class LineBatch:
    """The lines of one block: `table(n, line)` for DuckDB plus early rejects."""

    table: pa.Table
    count: int  # lines in the block, rejected ones included
    rejects: list[RawReject] = field(default_factory=list)


def head_text(raw: bytes) -> str:
    """First REJECT_KEEP bytes of a line as text, undecodable bytes replaced."""
    return raw[:REJECT_KEEP].rstrip(b"\r\n").decode("utf-8", "replace")


def split_lines(
    block: bytes | memoryview, max_line: int = MAX_LINE, first_id: int = 0
) -> LineBatch:
    """Split `block`, which must be empty or end with b"\\n", into a LineBatch whose
    column `n` numbers the lines from `first_id`."""
    import numpy as np
    import pyarrow as pa

    if not block:
        return LineBatch(_table(pa.array([], pa.string()), 0, first_id), 0)
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10) + 1  # one past each newline
    count = len(ends)
    if len(block) < 2**31 - 1:
        offsets = np.empty(count + 1, dtype=np.int32)
        offsets[0] = 0
        offsets[1:] = ends
        lengths_ok = count == 0 or int(np.diff(offsets).max()) <= max_line + 2
        if lengths_ok:
            arr = pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(block))
            try:
                arr.validate(full=True)  # UTF-8 check, in C++
            except pa.ArrowInvalid:
                pass
            else:
                return LineBatch(_table(arr, count, first_id), count)
    return _slow_split(block, ends, max_line, first_id)


def _slow_split(
    block: bytes | memoryview, ends: np.ndarray, max_line: int, first_id: int
) -> LineBatch:
    import pyarrow as pa

    block = bytes(block)
    good: list[str] = []
    index: list[int] = []
    rejects: list[RawReject] = []
    start = 0
    for i, end in enumerate(ends.tolist()):
        raw = block[start:end]
        start = end
        if len(raw.rstrip(b"\r\n")) > max_line:
            rejects.append(RawReject(i, f"line longer than {max_line} bytes", head_text(raw)))
            continue
        try:
            good.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            rejects.append(RawReject(i, f"invalid UTF-8 at byte {exc.start}", head_text(raw)))
            continue
        index.append(first_id + i)
    table = pa.table({"n": pa.array(index, pa.int64()), "line": pa.array(good, pa.string())})
    return LineBatch(
        pa.Table.from_batches(table.to_batches(CHUNK_ROWS), table.schema), len(ends), rejects
    )


def _table(arr: pa.Array, count: int, first_id: int) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    ids = np.arange(first_id, first_id + count, dtype=np.int64)
    table = pa.table({"n": pa.array(ids), "line": arr})
    # Several record batches (zero-copy slices) let DuckDB scan the batch on every core.
    return pa.Table.from_batches(table.to_batches(max_chunksize=CHUNK_ROWS), table.schema)
