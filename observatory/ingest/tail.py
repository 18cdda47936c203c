"""Reading log files exactly once: committed positions, partial lines, rotation, discovery.

A file is known by its identity (device and inode) plus a hash of its first bytes, so a
rename keeps its position, a truncation (copytruncate) or a reused inode starts over, and
a file is never read twice when a rotated name still matches the glob. A new file whose
first bytes are those of a file already read is a copy of it (copytruncate's rotated copy
under a name the glob matches, or a `cp`): it is not read from its start but from where the
original was read to once the original is truncated, and not at all while it is not.
Readers only ever hand out complete lines; a partial last line waits, unread, until its
newline arrives.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from observatory.ingest.lines import MAX_LINE, RawReject, head_text

HEAD = 1024  # bytes hashed to recognise a file
PREFIX_CHECK = 64 << 10  # bytes compared to tell a copy of a file from a look-alike
BLOCK = 32 << 20  # bytes read at once
# Seconds a file that left the glob (rotated away) is kept open after it stops growing.
ROTATE_WAIT = 5.0
# Seconds a truncated file's last position waits for its copy to show up (copytruncate
# writes the copy before truncating, so it is normally claimed in the same poll).
DONOR_WAIT = 60.0


@dataclass(frozen=True)
class FileState:
    """Where reading a file stands: what has been committed, and how to recognise the file."""

    key: str
    source: str
    path: str
    offset: int = 0
    line_no: int = 0  # lines consumed so far
    head_len: int = 0
    head_hash: str = ""


@dataclass(frozen=True)
class Block:
    """Complete lines read from a file; `state` is the file's position after them."""

    state: FileState
    data: bytes | memoryview
    first_line: int  # 1-based line number of the first line in `data`
    skipped: list[RawReject] = field(default_factory=list)  # over-long lines not in data


def file_key(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def _head_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class FileReader:
    """Reads the complete lines of one open file from a committed position."""

    def __init__(self, path: str, source: str, known: dict[str, FileState] | None = None) -> None:
        """Open `path`; resume from `known[key]` if that is this very file."""
        self.fd = os.open(path, os.O_RDONLY)
        st = os.fstat(self.fd)
        self.key = file_key(st)
        self.state = FileState(self.key, source, path)
        prior = (known or {}).get(self.key)
        self.resumed = prior is not None and self._same_file(prior, st.st_size)
        if prior is not None and self.resumed:
            self.state = replace(prior, path=path, source=source)

    def _same_file(self, known: FileState, size: int) -> bool:
        return size >= known.offset and self.starts_like(known)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pending(self) -> int:
        """Bytes written after the committed position (a partial line included)."""
        return max(0, self.size() - self.state.offset)

    def check_truncated(self) -> FileState | None:
        """Start over if the file was truncated in place (copytruncate); the position it
        had if it was (where its copy is to be read from), else None."""
        if self.intact():
            return None
        st = self.state
        self.state = FileState(st.key, st.source, st.path)
        return st

    def adopt(self, donor: FileState) -> None:
        """Read on from `donor`'s position: this file is a copy of the file it was read in."""
        self.state = replace(donor, key=self.key, source=self.state.source, path=self.state.path)

    def intact(self) -> bool:
        """Still the file its state was read from (not truncated or rewritten since)?"""
        return self.size() >= self.state.offset and (
            self.state.head_len == 0 or self.starts_like(self.state)
        )

    def starts_like(self, state: FileState) -> bool:
        """Does this file begin with the bytes `state` was recognised by (a copy of it)?"""
        if state.head_len <= 0:
            return False
        head = os.pread(self.fd, state.head_len, 0)
        return len(head) == state.head_len and _head_hash(head) == state.head_hash

    def position_after(self, data_len: int, lines: int) -> FileState:
        """The state once `data_len` more bytes, holding `lines` lines, are read."""
        return self._advance(data_len, lines)

    def _advance(self, data_len: int, lines: int) -> FileState:
        st = self.state
        offset = st.offset + data_len
        head_len = min(offset, HEAD)
        head = os.pread(self.fd, head_len, 0) if head_len != st.head_len else b""
        head_hash = _head_hash(head) if head_len != st.head_len else st.head_hash
        return replace(
            st, offset=offset, line_no=st.line_no + lines, head_len=head_len, head_hash=head_hash
        )

    def blocks(
        self, block_size: int = BLOCK, max_line: int = MAX_LINE, end: int | None = None
    ) -> Iterator[Block]:
        """Yield blocks of complete lines up to the last newline (before byte `end`, if
        given); state advances as they go.

        The caller commits each block's `state` with its rows; `self.state` moves on when
        the next block is asked for, so an uncommitted block is read again after a crash.
        """
        while True:
            size = block_size if end is None else min(block_size, end - self.state.offset)
            if size <= 0:
                return
            buf = os.pread(self.fd, size, self.state.offset)
            if not buf:
                return
            last_nl = buf.rfind(b"\n")
            if last_nl >= 0:
                # A view, not a copy: blocks are tens of MB.
                data = memoryview(buf)[: last_nl + 1]
                new = self._advance(len(data), buf.count(b"\n", 0, last_nl + 1))
                yield Block(new, data, self.state.line_no + 1)
                self.state = new
                continue
            if len(buf) < size or size < block_size:
                return  # a partial last line: wait for its newline
            # One line longer than the block: find where it ends.
            nl = self._find_newline(self.state.offset + len(buf))
            if nl is None or (end is not None and nl >= end):
                return  # a long line still being written: wait for its newline
            length = nl + 1 - self.state.offset
            if length <= max_line + 2:  # room for "\r\n"; split_lines judges it exactly
                line = os.pread(self.fd, length, self.state.offset)
                if len(line) != length or not line.endswith(b"\n"):
                    return  # changed under us (truncated): the next poll sorts it out
                new = self._advance(length, 1)
                yield Block(new, line, self.state.line_no + 1)
            else:
                reject = RawReject(0, f"line longer than {max_line} bytes", head_text(buf))
                new = self._advance(length, 1)
                yield Block(new, b"", self.state.line_no + 1, [reject])
            self.state = new

    def _find_newline(self, pos: int) -> int | None:
        while True:
            buf = os.pread(self.fd, 1 << 20, pos)
            if not buf:
                return None
            i = buf.find(b"\n")
            if i >= 0:
                return pos + i
            pos += len(buf)


def committed_original(
    reader: FileReader, known: dict[str, FileState], resumed: set[str]
) -> FileState | None:
    """The committed state of a file read before (in `known`, same source) that `reader`'s
    new file is a copy of, if that file was truncated or is gone since: no reader resumed
    it (`resumed`). Its copy is read on from there (copytruncate while nothing ran)."""
    for key, state in known.items():
        if (
            key != reader.key
            and state.source == reader.state.source
            and state.offset > 0
            and key not in resumed
            and reader.starts_like(state)
        ):
            return state
    return None


def _copy_of(copy: FileReader, original: FileReader) -> bool:
    """Can `copy` be a copy of the intact, followed `original`? Not if it is longer (the
    original only grows until it is truncated), and only if their bytes agree over what was
    read of the original, up to PREFIX_CHECK bytes (two logs may begin with one banner)."""
    size = copy.size()
    if size > original.size():
        return False
    n = min(size, original.state.offset, PREFIX_CHECK)
    return n > 0 and os.pread(copy.fd, n, 0) == os.pread(original.fd, n, 0)


def expand(pattern: str) -> list[str]:
    """Regular files matching a glob, sorted (oldest names first for rotated sets)."""
    return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


class SourceTailer:
    """Follows every file matching one source's glob: new files, renames, truncations.

    A file that leaves the glob (renamed away by rotation, or deleted) stays open and is
    drained on every poll until it has not grown for `rotate_wait` seconds: a writer
    typically keeps appending to the renamed file until it reopens its log, and those
    lines must not be lost.
    """

    def __init__(
        self,
        source: str,
        pattern: str,
        known: dict[str, FileState],
        rotate_wait: float = ROTATE_WAIT,
    ) -> None:
        self.source = source
        self.pattern = pattern
        self.known = known  # committed states by file key, shared with the caller
        self.rotate_wait = rotate_wait
        self.readers: dict[str, FileReader] = {}
        self._gone: dict[str, tuple[int, float]] = {}  # key -> (size, since) off the glob
        # Copies (see the module doc): copy's key -> key of the followed file it copies ...
        self._parked: dict[str, tuple[str, int]] = {}  # (and the copy's size when checked)
        # ... the position a truncated or let-go file had, for its copy (and since when) ...
        self._donors: dict[str, tuple[FileState, float]] = {}
        # ... and where an adopted copy started, for rewind().
        self._origin: dict[str, FileState] = {}
        # Files resumed from `known`: their committed state there is superseded by reading.
        self._resumed: set[str] = set()
        # Adopted copies whose position is still to be handed out (committed even when the
        # copy holds no line past it, so a restart does not read it from its start).
        self._announce: set[str] = set()

    def discover(self) -> set[str]:
        """Open readers for files that appeared; keep readers of renamed files to drain them.
        New files that are copies of followed ones are placed once all are open. Returns
        the keys of the files the glob matches now."""
        fresh: list[FileReader] = []
        live: set[str] = set()
        for path in expand(self.pattern):
            try:
                st = os.stat(path)
            except FileNotFoundError:  # rotated or deleted since the glob ran
                continue
            key = file_key(st)
            live.add(key)
            reader = self.readers.get(key)
            if reader is not None:
                if reader.state.path != path:
                    reader.state = replace(reader.state, path=path)
                continue
            try:
                reader = FileReader(path, self.source, self.known)
            except FileNotFoundError:
                continue
            if reader.key in self.readers:
                # The path was replaced between stat and open by a file already followed:
                # keep the reader that holds its position.
                reader.close()
                continue
            self.readers[reader.key] = reader
            if reader.resumed:
                self._resumed.add(reader.key)
            else:
                fresh.append(reader)
        for reader in fresh:
            self._place_copy(reader)
        return live

    def _place_copy(self, reader: FileReader) -> None:
        """A new file that begins like a file already read is a copy of it: parked while
        that file is followed and intact, else read on from where that file was read to."""
        for key, other in self.readers.items():
            if key == reader.key or not reader.starts_like(other.state):
                continue
            if not other.intact():  # truncated since its last read: the copy has the rest
                self._adopt(reader, other.state)
                return
            if _copy_of(reader, other):
                self._parked[reader.key] = (key, reader.size())
                return
        for key, (state, _since) in self._donors.items():
            if reader.starts_like(state):
                self._adopt(reader, state)
                del self._donors[key]
                return
        committed = committed_original(reader, self.known, self._resumed)
        if committed is not None:
            self._adopt(reader, committed)

    def _adopt(self, reader: FileReader, donor: FileState) -> None:
        reader.adopt(donor)
        self._origin[reader.key] = reader.state
        self._announce.add(reader.key)

    def _unparked(self, key: str, reader: FileReader) -> bool:
        """May a parked copy be read now? Once the file it copies was truncated or let go,
        it is read on from that file's last position; if it turns out to differ from that
        file (another file that merely began the same way), from its start."""
        original, seen = self._parked[key]
        entry = self._donors.pop(original, None)
        donor = entry[0] if entry is not None else None
        other = self.readers.get(original)
        if donor is None and other is not None:
            if other.intact():
                size = reader.size()
                if (size == seen and size <= other.size()) or _copy_of(reader, other):
                    self._parked[key] = (original, size)
                    return False  # a copy of what is being read: nothing new in it
            else:
                donor = other.state  # truncated, noticed when its turn comes
        del self._parked[key]
        if donor is not None and reader.starts_like(donor):
            self._adopt(reader, donor)
        return True

    def _copied(self, key: str) -> bool:
        """Is a parked copy waiting on the file `key`?"""
        return any(original == key for original, _ in self._parked.values())

    def blocks(self, block_size: int = BLOCK) -> Iterator[Block]:
        """Complete lines from every followed file. Files gone from the glob are drained
        until they stop growing, then closed (rename+create rotation loses nothing)."""
        live = self.discover()
        now = time.monotonic()
        for key, reader in list(self.readers.items()):
            truncated = reader.check_truncated()
            if truncated is not None and truncated.offset > 0:
                self._donors[key] = (truncated, now)
            if key not in self._parked or self._unparked(key, reader):
                if key in self._announce:
                    self._announce.discard(key)
                    yield Block(reader.state, b"", reader.state.line_no + 1)
                yield from reader.blocks(block_size)
            if key in live:
                self._gone.pop(key, None)
                continue
            size = reader.size()
            seen = self._gone.get(key)
            if seen is None or seen[0] != size:
                self._gone[key] = seen = (size, now)
            if now - seen[1] >= self.rotate_wait:
                if self._copied(key):
                    self._donors[key] = (reader.state, now)  # its copy reads on from here
                reader.close()
                del self.readers[key]
                del self._gone[key]
                self._parked.pop(key, None)
                self._origin.pop(key, None)
        for key in [k for k, (_, since) in self._donors.items() if now - since > DONOR_WAIT]:
            if not self._copied(key):
                del self._donors[key]

    def rewind(self, committed: dict[str, FileState]) -> None:
        """Move every reader back to its committed position, after a transaction that
        appended its blocks was rolled back (readers advance as blocks are handed out, so
        without this the rolled-back lines would be skipped until the next restart)."""
        self.known = committed
        for key, reader in self.readers.items():
            prior = committed.get(key)
            path = reader.state.path
            if prior is not None and reader._same_file(prior, reader.size()):
                reader.state = replace(prior, path=path, source=self.source)
            elif key in self._origin:  # an adopted copy: back to where it took over
                reader.state = self._origin[key]
                self._announce.add(key)
            else:
                reader.state = FileState(key, self.source, path)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()
        self._gone.clear()
        self._parked.clear()
        self._donors.clear()
        self._origin.clear()
        self._resumed.clear()
        self._announce.clear()
