"""Tailing and backfill into a real DuckDB file: discovery, rotation, truncation, partial and
over-long lines, rejects, resume, and timestamp formats. Every test asserts on what landed in
`events`, `rejects` and `ingest_offsets`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from observatory.config import Config, ConfigError, load_config
from observatory.ingest.backfill import ingest_files, plan_files
from observatory.ingest.lines import MAX_LINE
from observatory.ingest.tail import FileReader, SourceTailer, file_key
from observatory.store.db import Store, Tally
from tests.helpers import (
    BASE_EPOCH_MS,
    counts,
    ids,
    lines,
    make_config,
    message_ids,
    pino_line,
    poll,
    q,
)

SMALL_BLOCK = 64 << 10  # forces the reader's "line longer than the block" path


def tailer_for(config: Config, store: Store, rotate_wait: float = 0.0) -> SourceTailer:
    src = config.sources[0]
    return SourceTailer(src.name, config.source_glob(src), store.file_states(), rotate_wait)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def rejects(store: Store) -> list[tuple[str, int, str]]:
    """(file name, line number, reason) of every reject, in line order."""
    rows = q(store, "SELECT file, line_no, reason FROM rejects ORDER BY file, line_no")
    return [(os.path.basename(f), n, r) for f, n, r in rows]


def offsets(store: Store) -> dict[str, tuple[str, int, int]]:
    """file_key -> (file name, offset, line_no) from ingest_offsets."""
    rows = q(store, 'SELECT file_key, path, "offset", line_no FROM ingest_offsets')
    return {k: (os.path.basename(p), o, n) for k, p, o, n in rows}


def nonblank(data: bytes) -> int:
    return sum(1 for ln in data.split(b"\n") if ln.strip())


def ingest_all(config: Config, store: Store, *paths: Path) -> Tally:
    plan = plan_files(config, [str(p) for p in paths])
    return ingest_files(store, plan).tally


# ------------------------------------------------------------------ discovery


def test_file_created_after_start_is_picked_up_on_next_poll(
    config: Config, store: Store, logs: Path
) -> None:
    append(logs / "a.jsonl", lines(0, 5))
    tailer = tailer_for(config, store)
    assert poll(store, tailer).rows == 5
    assert poll(store, tailer).rows == 0

    append(logs / "b.jsonl", lines(5, 12))
    append(logs / "not-matching.log", lines(100, 103))  # outside the glob: never read
    tally = poll(store, tailer)
    assert (tally.rows, tally.rejected, tally.lines) == (7, 0, 7)
    assert message_ids(store) == ids(0, 12)
    assert sorted(v[0] for v in offsets(store).values()) == ["a.jsonl", "b.jsonl"]
    tailer.close()


# ------------------------------------------------------------------ rotation


@pytest.mark.parametrize(
    "rotated",
    ["app.1.jsonl", "app.jsonl.1"],
    ids=["rotated-name-matches-glob", "rotated-name-outside-glob"],
)
def test_rename_create_rotation_reads_everything_once(
    tmp_path: Path, logs: Path, rotated: str, open_store: Callable[[], Store]
) -> None:
    config = load_config(make_config(tmp_path, [{"path": "logs/app*.jsonl"}]))
    store = open_store()
    tailer = tailer_for(config, store)
    old_path = logs / "app.jsonl"
    writer = open(old_path, "ab", buffering=0)
    writer.write(lines(0, 10))
    assert poll(store, tailer).rows == 10

    writer.write(lines(10, 15))  # after the last poll, before the rename
    os.rename(old_path, logs / rotated)
    writer.write(lines(15, 20))  # after the rename, through the writer's open fd
    new_writer = open(old_path, "ab", buffering=0)
    new_writer.write(lines(20, 30))
    writer.close()

    tally = poll(store, tailer)
    assert (tally.rows, tally.rejected) == (20, 0)
    assert message_ids(store) == ids(0, 30)

    new_writer.write(lines(30, 33))
    assert poll(store, tailer).rows == 3
    assert poll(store, tailer).rows == 0
    assert message_ids(store) == ids(0, 33)
    assert counts(store) == (33, 0)

    by_name = {v[0]: v[1:] for v in offsets(store).values()}
    old_size = (logs / rotated).stat().st_size
    new_size = old_path.stat().st_size
    if rotated == "app.1.jsonl":  # still followed under its new name
        assert by_name == {"app.1.jsonl": (old_size, 20), "app.jsonl": (new_size, 13)}
    else:  # drained and dropped; its committed position keeps the name it was read under
        assert sorted(v[1:] for v in offsets(store).values()) == sorted(
            [(old_size, 20), (new_size, 13)]
        )
        assert len(tailer.readers) == 1
    new_writer.close()
    tailer.close()


def test_rotated_file_keeps_being_drained_while_writer_still_appends(
    tmp_path: Path, logs: Path, open_store: Callable[[], Store]
) -> None:
    """A writer that reopens its log only some time after the rename (logrotate's
    postrotate signal) must not lose the lines it writes to the old file meanwhile, even
    when a poll ran between the rename and those lines."""
    config = load_config(make_config(tmp_path, [{"path": "logs/app*.jsonl"}]))
    store = open_store()
    tailer = tailer_for(config, store, rotate_wait=60.0)
    old_path = logs / "app.jsonl"
    writer = open(old_path, "ab", buffering=0)
    writer.write(lines(0, 10))
    assert poll(store, tailer).rows == 10

    os.rename(old_path, logs / "app.jsonl.1")  # out of the glob
    writer.write(lines(10, 12))
    assert poll(store, tailer).rows == 2
    writer.write(lines(12, 20))  # after a poll that already saw the file gone
    append(old_path, lines(20, 25))
    writer.close()
    assert poll(store, tailer).rows == 13
    assert message_ids(store) == ids(0, 25)
    assert counts(store) == (25, 0)

    # Once it has not grown for rotate_wait seconds, the rotated file is let go.
    tailer.rotate_wait = 0.0
    assert poll(store, tailer).rows == 0
    assert [r.state.path for r in tailer.readers.values()] == [str(old_path)]
    tailer.close()


@pytest.mark.parametrize("after", [3, 40], ids=["shorter-than-before", "longer-than-before"])
def test_copytruncate_reads_new_lines_from_offset_zero(
    config: Config, store: Store, logs: Path, after: int
) -> None:
    path = logs / "app.jsonl"
    writer = open(path, "ab", buffering=0)  # O_APPEND, as loggers open their files
    writer.write(lines(0, 20))
    tailer = tailer_for(config, store)
    assert poll(store, tailer).rows == 20
    key = file_key(path.stat())

    writer.write(lines(20, 25))  # after the last poll: only the copy will have these
    shutil.copyfile(path, logs / "app.jsonl.1")  # outside the glob
    os.truncate(path, 0)
    writer.write(lines(100, 100 + after))
    assert file_key(path.stat()) == key  # the same inode, truncated in place

    tally = poll(store, tailer)
    assert (tally.rows, tally.rejected) == (after, 0)
    assert message_ids(store) == sorted(ids(0, 20) + ids(100, 100 + after))
    writer.write(lines(200, 205))
    assert poll(store, tailer).rows == 5
    assert poll(store, tailer).rows == 0
    assert message_ids(store) == sorted(ids(0, 20) + ids(100, 100 + after) + ids(200, 205))
    assert offsets(store)[key] == ("app.jsonl", path.stat().st_size, after + 5)
    writer.close()
    tailer.close()


@pytest.mark.parametrize("copy_seen_first", [False, True], ids=["same-poll", "copy-seen-first"])
def test_copytruncate_copy_inside_the_glob_is_read_on_not_again(
    config: Config, store: Store, logs: Path, copy_seen_first: bool
) -> None:
    """logrotate's copytruncate with dateext writes the copy under a name the glob matches
    (app-20261127.jsonl for logs/*.jsonl). The copy holds what was already read: only the
    lines the original had and no poll read yet are taken from it, each exactly once."""
    path = logs / "app.jsonl"
    writer = open(path, "ab", buffering=0)
    writer.write(lines(0, 20))
    tailer = tailer_for(config, store)
    assert poll(store, tailer).rows == 20

    writer.write(lines(20, 25))  # after the last poll
    shutil.copyfile(path, logs / "app-20261127.jsonl")
    if copy_seen_first:  # a poll between the copy and the truncation: the copy waits
        assert poll(store, tailer).rows == 5  # 20-25, from the original
    os.truncate(path, 0)
    writer.write(lines(100, 110))
    assert poll(store, tailer).rows == (10 if copy_seen_first else 15)
    assert poll(store, tailer).rows == 0
    assert message_ids(store) == sorted(ids(0, 25) + ids(100, 110))  # each once
    by_name = {v[0]: v[1:] for v in offsets(store).values()}
    copy_size = (logs / "app-20261127.jsonl").stat().st_size
    assert by_name["app-20261127.jsonl"] == (copy_size, 25)  # read to its end, line 25
    tailer.close()
    # started again: the copy is known by its committed position, nothing is read twice
    tailer = tailer_for(config, store)
    assert poll(store, tailer).rows == 0
    writer.write(lines(110, 112))
    assert poll(store, tailer).rows == 2
    assert message_ids(store) == sorted(ids(0, 25) + ids(100, 112))
    writer.close()
    tailer.close()


@pytest.mark.parametrize("reader", ["watch", "ingest"])
def test_copytruncate_while_stopped_reads_the_copy_on_from_the_committed_position(
    config: Config, store: Store, logs: Path, reader: str
) -> None:
    """Rotated (copytruncate) while nothing ran: the live tailer and a backfill both read the
    copy on from the original's committed position."""
    path = logs / "app.jsonl"

    def read(*paths: Path) -> int:
        if reader == "ingest":
            return ingest_all(config, store, *paths).rows
        tailer = tailer_for(config, store)  # started on the committed positions
        try:
            return poll(store, tailer).rows
        finally:
            tailer.close()  # observatory stops

    append(path, lines(0, 20))
    assert read(path) == 20
    append(path, lines(20, 30))  # the log goes on and is rotated meanwhile
    shutil.copyfile(path, logs / "app-20261127.jsonl")
    os.truncate(path, 0)
    append(path, lines(100, 104))
    assert read(logs / "*.jsonl") == 14
    assert message_ids(store) == sorted(ids(0, 30) + ids(100, 104))


def test_a_plain_copy_of_a_followed_file_is_not_read_and_a_look_alike_is(
    config: Config, store: Store, logs: Path
) -> None:
    """`cp app.jsonl backup.jsonl` into the glob duplicates nothing; a new log that only
    begins like a followed one (the same banner line) is another file, read in full."""
    banner = b'{"msg":"service started","note":"%s"}\n' % (b"x" * 1200)  # longer than HEAD
    path = logs / "app.jsonl"
    append(path, banner + lines(0, 20))
    tailer = tailer_for(config, store)
    assert poll(store, tailer).lines == 21  # (the banner has no timestamp: a reject)
    shutil.copyfile(path, logs / "backup.jsonl")
    append(path, lines(20, 25))
    assert poll(store, tailer).rows == 5
    assert poll(store, tailer).rows == 0
    assert message_ids(store) == ids(0, 25)
    # the look-alike: the same first line, then lines of its own, growing past the original
    other = logs / "other.jsonl"
    append(other, banner + lines(500, 503))
    n = poll(store, tailer).lines
    append(other, lines(503, 560))
    n += poll(store, tailer).lines + poll(store, tailer).lines
    assert n == 61  # its banner and 60 lines: read from its start
    assert message_ids(store) == sorted(ids(0, 25) + ids(500, 560))
    tailer.close()


def test_copytruncate_seen_empty_then_refilled(config: Config, store: Store, logs: Path) -> None:
    path = logs / "app.jsonl"
    append(path, lines(0, 10))
    tailer = tailer_for(config, store)
    assert poll(store, tailer).rows == 10
    os.truncate(path, 0)
    assert poll(store, tailer).rows == 0  # the poll sees the file empty
    append(path, lines(10, 30))
    assert poll(store, tailer).rows == 20
    assert message_ids(store) == ids(0, 30)
    tailer.close()


# ------------------------------------------------------------------ partial lines


@pytest.mark.parametrize("block_size", [32 << 20, 16], ids=["default-block", "tiny-block"])
def test_partial_last_line_waits_for_its_newline(
    config: Config, store: Store, logs: Path, block_size: int
) -> None:
    path = logs / "a.jsonl"
    first = pino_line(0)
    second = pino_line(1, err={"code": "40100", "message": "rate limited " + "x" * 300})
    append(path, first + second[:50])
    tailer = tailer_for(config, store)
    assert poll(store, tailer, block_size).rows == 1
    assert list(offsets(store).values()) == [("a.jsonl", len(first), 1)]

    append(path, second[50:-1])  # everything but the newline
    assert poll(store, tailer, block_size).rows == 0
    assert counts(store) == (1, 0)

    append(path, b"\n")
    tally = poll(store, tailer, block_size)
    assert (tally.rows, tally.rejected) == (1, 0)
    assert poll(store, tailer, block_size).rows == 0
    assert message_ids(store) == ["m0", "m1"]
    assert q(store, "SELECT error_code, error_message FROM events WHERE message_id = 'm1'") == [
        ("40100", "rate limited " + "x" * 300)
    ]
    assert list(offsets(store).values()) == [("a.jsonl", len(first) + len(second), 2)]
    tailer.close()


# ------------------------------------------------------------------ over-long lines


def big_line(size: int, i: int = 999) -> bytes:
    """A valid JSON event line of exactly `size` bytes plus its newline."""
    head = pino_line(i)[:-2] + b',"pad":"'
    return head + b"x" * (size - len(head) - 2) + b'"}\n'


@pytest.mark.parametrize("block_size", [32 << 20, SMALL_BLOCK], ids=["default-block", "64k-block"])
def test_two_mib_line_between_good_lines_is_one_reject(
    config: Config, store: Store, logs: Path, block_size: int
) -> None:
    path = logs / "a.jsonl"
    data = lines(0, 5) + big_line(2 << 20) + lines(5, 8) + b'{"time": 1\n' + lines(8, 12)
    append(path, data)
    tailer = tailer_for(config, store)
    tally = poll(store, tailer, block_size)
    assert (tally.rows, tally.rejected, tally.lines) == (12, 2, 14)
    assert counts(store) == (12, 2) and nonblank(data) == 14
    assert message_ids(store) == ids(0, 12)
    got = rejects(store)
    assert [(f, n) for f, n, _ in got] == [("a.jsonl", 6), ("a.jsonl", 10)]
    assert f"longer than {MAX_LINE} bytes" in got[0][2]
    assert got[1][2].startswith("invalid JSON")
    kept = q(store, "SELECT line FROM rejects WHERE line_no = 6")[0][0]
    assert kept == big_line(2 << 20)[:1024].decode()
    assert list(offsets(store).values()) == [("a.jsonl", len(data), 14)]
    tailer.close()


@pytest.mark.parametrize("block_size", [32 << 20, SMALL_BLOCK], ids=["default-block", "64k-block"])
def test_long_line_under_the_limit_is_a_row(
    config: Config, store: Store, logs: Path, block_size: int
) -> None:
    """A 512 KiB line is within MAX_LINE (1 MiB): a row whatever the read block size."""
    path = logs / "a.jsonl"
    data = lines(0, 2) + big_line(512 << 10, 2) + lines(3, 5)
    append(path, data)
    tailer = tailer_for(config, store)
    tally = poll(store, tailer, block_size)
    assert (tally.rows, tally.rejected) == (5, 0)
    assert message_ids(store) == ids(0, 5)
    assert rejects(store) == []
    tailer.close()


@pytest.mark.parametrize("block_size", [32 << 20, SMALL_BLOCK], ids=["default-block", "64k-block"])
def test_two_mib_line_still_being_written_is_held_then_rejected(
    config: Config, store: Store, logs: Path, block_size: int
) -> None:
    path = logs / "a.jsonl"
    big = big_line(2 << 20)
    append(path, lines(0, 3) + big[: 1 << 20])
    tailer = tailer_for(config, store)
    assert poll(store, tailer, block_size).rows == 3
    append(path, big[1 << 20 : -1])  # all of it but the newline
    tally = poll(store, tailer, block_size)
    assert (tally.rows, tally.rejected) == (0, 0)
    assert counts(store) == (3, 0)
    assert list(offsets(store).values()) == [("a.jsonl", len(lines(0, 3)), 3)]

    append(path, b"\n" + lines(3, 5))
    tally = poll(store, tailer, block_size)
    assert (tally.rows, tally.rejected) == (2, 1)
    assert message_ids(store) == ids(0, 5)
    got = rejects(store)
    assert len(got) == 1 and got[0][:2] == ("a.jsonl", 4)
    assert "longer than" in got[0][2]
    assert poll(store, tailer, block_size).lines == 0
    tailer.close()


# ------------------------------------------------------------------ bad lines


def test_invalid_utf8_line_is_one_reject(config: Config, store: Store, logs: Path) -> None:
    bad = pino_line(3)[:-2] + b',"note":"caf\xe9 \xff"}\n'
    data = lines(0, 3) + bad + lines(4, 7)
    append(logs / "a.jsonl", data)
    tailer = tailer_for(config, store)
    tally = poll(store, tailer)
    assert (tally.rows, tally.rejected) == (6, 1)
    assert message_ids(store) == sorted(ids(0, 3) + ids(4, 7))
    got = rejects(store)
    assert [(f, n) for f, n, _ in got] == [("a.jsonl", 4)]
    assert "invalid UTF-8" in got[0][2]
    assert sum(counts(store)) == nonblank(data)
    tailer.close()


def test_bad_lines_are_rejected_with_reasons_and_blank_lines_ignored(
    config: Config, store: Store, logs: Path
) -> None:
    good = iter(range(100))
    rows = [
        (pino_line(next(good)), None),
        (b'{"time": 1700000000000, "dest": "meta_capi", "messageId": "cut\n', "invalid JSON"),
        (b"\n", "blank"),
        (pino_line(next(good)), None),
        (b'{"dest": "meta_capi", "messageId": "no-time", "code": 200}\n', "missing field ts"),
        (b"   \t \n", "blank"),
        (b'{"time": 1700000000000, "messageId": "no-dest", "code": 200}\n', "missing field dest"),
        (pino_line(next(good), time="yesterday"), "unparseable"),
        (b"\r\n", "blank"),
        (b"[1, 2, 3]\n", "invalid JSON"),
        (b"not json at all\n", "invalid JSON"),
        (pino_line(next(good)), None),
    ]
    data = b"".join(r for r, _ in rows)
    append(logs / "a.jsonl", data)
    tailer = tailer_for(config, store)
    tally = poll(store, tailer)

    expected = {i + 1: why for i, (_, why) in enumerate(rows) if why and why != "blank"}
    got = {n: reason for _, n, reason in rejects(store)}
    assert sorted(got) == sorted(expected)
    for n, why in expected.items():
        assert got[n].startswith(why), (n, got[n])
    assert got[5] == "missing field ts (time)"
    assert got[7] == "missing field destination (dest)"
    assert "yesterday" in got[8]
    assert message_ids(store) == ["m0", "m1", "m3"]
    assert (tally.rows, tally.rejected, tally.lines) == (3, 6, 9)
    assert sum(counts(store)) == nonblank(data) == 9
    tailer.close()


# ------------------------------------------------------------------ resume


def test_resume_reads_only_new_lines(
    config: Config, logs: Path, open_store: Callable[[], Store]
) -> None:
    path = logs / "a.jsonl"
    append(path, lines(0, 100) + b'{"broken\n' + pino_line(100)[:40])
    store = open_store()
    tally = ingest_all(config, store, path)
    assert (tally.rows, tally.rejected) == (100, 1)
    store.close()

    append(path, pino_line(100)[40:] + lines(101, 150) + b"\n")
    store = open_store()  # a new Store on the same DB file
    tally = ingest_all(config, store, path)
    assert (tally.rows, tally.rejected, tally.lines) == (50, 0, 50)
    assert message_ids(store) == ids(0, 150)
    assert rejects(store) == [("a.jsonl", 101, "invalid JSON")]
    assert ingest_all(config, store, path).lines == 0
    store.close()

    # The tailer resumes from the same committed positions.
    append(path, lines(150, 160))
    store = open_store()
    tailer = tailer_for(config, store)
    assert poll(store, tailer).rows == 10
    assert message_ids(store) == ids(0, 160)
    assert list(offsets(store).values()) == [("a.jsonl", path.stat().st_size, 162)]
    tailer.close()


def test_file_replaced_at_same_path_is_read_from_start(
    config: Config, store: Store, logs: Path
) -> None:
    path = logs / "a.jsonl"
    append(path, lines(0, 50))
    ingest_all(config, store, path)
    old_key = file_key(path.stat())
    os.link(path, logs / "keep-old-inode")  # keep the old inode alive: a new one is certain

    tmp = logs / "a.jsonl.tmp"
    tmp.write_bytes(lines(500, 560))  # longer than the old file, different head
    os.replace(tmp, path)
    assert file_key(path.stat()) != old_key
    tally = ingest_all(config, store, path)
    assert (tally.rows, tally.rejected) == (60, 0)
    assert message_ids(store) == sorted(ids(0, 50) + ids(500, 560))


@pytest.mark.parametrize("longer", [False, True], ids=["shorter", "longer"])
def test_reused_inode_with_different_head_is_read_from_start(
    config: Config, store: Store, logs: Path, longer: bool
) -> None:
    """A file at a committed (device, inode) whose first bytes differ is another file. The
    inode is reused for certain by rewriting the file in place (O_TRUNC): to the store this
    is exactly an inode the filesystem handed to a new file."""
    path = logs / "a.jsonl"
    append(path, lines(0, 30))
    ingest_all(config, store, path)
    key = file_key(path.stat())
    committed = offsets(store)[key][1]

    new = lines(1000, 1100 if longer else 1010)
    with open(path, "wb") as f:
        f.write(new)
    assert file_key(path.stat()) == key
    assert (len(new) > committed) is longer
    tally = ingest_all(config, store, path)
    assert tally.rows == (100 if longer else 10)
    assert message_ids(store) == sorted(ids(0, 30) + ids(1000, 1000 + tally.rows))
    assert offsets(store)[key] == ("a.jsonl", len(new), tally.rows)


def test_same_file_planned_twice_is_read_once(config: Config, store: Store, logs: Path) -> None:
    path = logs / "a.jsonl"
    append(path, lines(0, 40))
    os.link(path, logs / "hardlink.jsonl")
    plan = plan_files(config, [str(path), str(path), str(logs / "*.jsonl")])
    assert len(plan) == 4
    result = ingest_files(store, plan)
    assert (result.tally.rows, result.files) == (40, 1)
    assert message_ids(store) == ids(0, 40)


@pytest.mark.parametrize("commit_bytes", [1, 700, 1 << 30])
def test_small_commit_sizes_give_the_same_result(
    config: Config, store: Store, logs: Path, commit_bytes: int
) -> None:
    path = logs / "a.jsonl"
    data = lines(0, 40) + b"\n" + b"oops\n" + big_line(MAX_LINE + 10) + lines(40, 60)
    append(path, data)
    result = ingest_files(store, plan_files(config, [str(path)]), commit_bytes=commit_bytes)
    assert (result.tally.rows, result.tally.rejected) == (60, 2)
    assert message_ids(store) == ids(0, 60)
    got = rejects(store)
    assert [n for _, n, _ in got] == [42, 43]
    assert got[0][2].startswith("invalid JSON")
    assert got[1][2] == f"line longer than {MAX_LINE} bytes"
    assert list(offsets(store).values()) == [("a.jsonl", len(data), 63)]


def test_commit_bytes_from_environment(
    config: Config, store: Store, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OBSERVATORY_COMMIT_BYTES bounds the blocks (and so the transactions) of a backfill."""
    path = logs / "a.jsonl"
    data = lines(0, 100)
    append(path, data)
    monkeypatch.setenv("OBSERVATORY_COMMIT_BYTES", "500")
    seen: list[int] = []
    result = ingest_files(store, plan_files(config, [str(path)]), lambda d, t, _: seen.append(d))
    assert result.tally.rows == 100
    steps = [b - a for a, b in zip([0, *seen], seen, strict=False)]
    assert len(seen) >= len(data) // 500 and max(steps) <= 500 and seen[-1] == len(data)
    assert message_ids(store) == ids(0, 100)

    monkeypatch.setenv("OBSERVATORY_COMMIT_BYTES", "lots")
    with pytest.raises(ConfigError, match="OBSERVATORY_COMMIT_BYTES"):
        ingest_files(store, plan_files(config, [str(path)]))


def test_rewind_after_rolled_back_poll_reads_the_lines_again(
    config: Config, store: Store, logs: Path
) -> None:
    append(logs / "a.jsonl", lines(0, 50))
    append(logs / "b.jsonl", lines(50, 60))
    tailer = tailer_for(config, store)
    with pytest.raises(RuntimeError):
        with store.transaction():
            for n, block in enumerate(tailer.blocks(512)):
                store.stage(block)
                if n == 3:
                    raise RuntimeError("append failed half way")
    assert counts(store) == (0, 0)
    tailer.rewind(store.file_states())
    assert poll(store, tailer, 512).rows == 60
    assert message_ids(store) == ids(0, 60)
    tailer.close()


def test_failed_commit_in_ingest_rolls_back_and_store_stays_usable(
    config: Config, store: Store, logs: Path
) -> None:
    path = logs / "a.jsonl"
    append(path, lines(0, 5))
    unknown = config.sources[0].model_copy(update={"name": "not-registered"})
    with pytest.raises(KeyError):  # the store has no SQL for that source: commit fails
        ingest_files(store, [(str(path), unknown)])
    assert counts(store) == (0, 0) and offsets(store) == {}
    tally = ingest_all(config, store, path)  # no "transaction within a transaction"
    assert (tally.rows, tally.rejected) == (5, 0)
    assert message_ids(store) == ids(0, 5)


def test_failed_commit_in_transaction_leaves_store_usable(
    config: Config, store: Store, logs: Path
) -> None:
    """Store.transaction() must roll back when its commit fails, or the store is stuck
    inside an open transaction (every later begin() fails)."""
    path = logs / "a.jsonl"
    append(path, lines(0, 5))
    reader = FileReader(str(path), "not-registered")
    with pytest.raises(KeyError):
        with store.transaction():
            for block in reader.blocks():
                store.stage(block)
    reader.close()
    tailer = tailer_for(config, store)
    assert poll(store, tailer).rows == 5
    assert message_ids(store) == ids(0, 5)
    tailer.close()


def test_reader_resumes_only_the_very_same_file(store: Store, logs: Path) -> None:
    path = logs / "a.jsonl"
    append(path, lines(0, 5))
    reader = FileReader(str(path), "fwd")
    blocks = list(reader.blocks())
    reader.close()
    state = blocks[-1].state
    size = len(lines(0, 5))
    assert (state.offset, state.line_no, state.head_len) == (size, 5, min(size, 1024))
    again = FileReader(str(path), "fwd", {state.key: state})
    assert again.state == state and again.pending() == 0
    again.close()


# ------------------------------------------------------------------ timestamps

# 2023-11-14T22:13:20Z and, for the fractional forms, 250 ms later.
WHOLE = BASE_EPOCH_MS
FRACTION = BASE_EPOCH_MS + 250
TS_WHOLE: list[object] = [
    1_700_000_000,  # epoch s
    1_700_000_000_000,  # epoch ms
    1_700_000_000_000_000,  # epoch us
    1_700_000_000_000_000_000,  # epoch ns
    "1700000000000",  # epoch ms as a string
    "2023-11-14T22:13:20Z",
    "2023-11-15T00:13:20+02:00",
    "2023-11-14T17:13:20-05:00",
    "2023-11-14T22:13:20.000000Z",
    "2023-11-14 22:13:20+00:00",
]
TS_FRACTION: list[object] = [
    1_700_000_000_250,  # epoch ms
    1_700_000_000_250_000,  # epoch us
    1_700_000_000_250_000_000,  # epoch ns
    "2023-11-14T22:13:20.250Z",
    "2023-11-14T22:13:20.25Z",
    "2023-11-15T00:13:20.250+02:00",
    "2023-11-14T22:13:20.250000+00:00",
]
# Fractional epoch seconds: a JSON number and a string.
TS_FRACTIONAL_SECONDS: list[object] = [1_700_000_000.25, "1700000000.25", 1_700_000_000.75]


def ts_lines(values: list[object], start: int) -> bytes:
    return b"".join(pino_line(start + i, time=v) for i, v in enumerate(values))


def epoch_ms_by_id(store: Store) -> dict[str, int]:
    return dict(q(store, "SELECT message_id, epoch_ms(ts) FROM events"))


def test_timestamp_formats_land_on_the_same_instant(
    config: Config, store: Store, logs: Path
) -> None:
    data = ts_lines(TS_WHOLE, 0) + ts_lines(TS_FRACTION, 100)
    append(logs / "a.jsonl", data)
    tally = ingest_all(config, store, logs / "a.jsonl")
    assert (tally.rows, tally.rejected) == (len(TS_WHOLE) + len(TS_FRACTION), 0)
    got = epoch_ms_by_id(store)
    assert {got[f"m{i}"] for i in range(len(TS_WHOLE))} == {WHOLE}
    assert {got[f"m{100 + i}"] for i in range(len(TS_FRACTION))} == {FRACTION}


def test_fractional_epoch_seconds_keep_their_fraction(
    config: Config, store: Store, logs: Path
) -> None:
    """`"time": 1700000000.25` is 250 ms after the second, not the second itself (nor,
    for .75, the next second)."""
    append(logs / "a.jsonl", ts_lines(TS_FRACTIONAL_SECONDS, 0))
    tally = ingest_all(config, store, logs / "a.jsonl")
    assert (tally.rows, tally.rejected) == (3, 0)
    got = epoch_ms_by_id(store)
    assert [got["m0"], got["m1"], got["m2"]] == [FRACTION, FRACTION, WHOLE + 750]


def test_int64_min_timestamp_is_one_reject_not_a_failed_ingest(
    config: Config, store: Store, logs: Path
) -> None:
    """`abs(-9223372036854775808)` overflows in DuckDB: one such line must not make the
    whole ingest fail (it would fail again on every restart, since nothing commits)."""
    data = lines(0, 3) + pino_line(3, time=-(2**63)) + lines(4, 6)
    append(logs / "a.jsonl", data)
    tally = ingest_all(config, store, logs / "a.jsonl")
    assert (tally.rows, tally.rejected) == (5, 1)
    assert [(n, r.split(":")[0]) for _, n, r in rejects(store)] == [
        (4, "unparseable or implausible timestamp")
    ]


def test_every_written_line_is_a_row_or_a_reject(config: Config, store: Store, logs: Path) -> None:
    """Rows + rejects == non-blank lines, across a mix of everything above, tailed in
    pieces of arbitrary size."""
    data = (
        lines(0, 30)
        + b"\n\n"
        + big_line(2 << 20, 30)
        + b"{bad\n"
        + pino_line(31)[:-2]
        + b',"x":"\xc3\x28"}\n'
        + ts_lines(TS_WHOLE, 40)
        + json.dumps({"dest": "x"}).encode()
        + b"\n"
        + lines(60, 90)
    )
    path = logs / "a.jsonl"
    path.touch()
    tailer = tailer_for(config, store)
    n = len(data)
    cuts = [0, 7, 100, 3000, 3001, 500_000, n - 6000, n - 5990, n - 3, n]
    assert cuts == sorted(cuts)
    for a, b in zip(cuts, cuts[1:], strict=False):
        append(path, data[a:b])
        poll(store, tailer, SMALL_BLOCK)
    rows, rejected = counts(store)
    assert rows + rejected == nonblank(data)
    assert (rows, rejected) == (30 + len(TS_WHOLE) + 30, 4)
    assert len(set(message_ids(store))) == rows
    tailer.close()


def test_blocks_stop_at_the_end_offset_given(logs: Path) -> None:
    """`blocks(end=...)` hands out the complete lines before `end` and nothing past it,
    small blocks and a line longer than a block included."""
    path = logs / "a.jsonl"
    long_line = b"x" * 300 + b"\n"
    data = b"one\n" + long_line + b"three\n"
    path.write_bytes(data + b"four\nfive\n")
    for end, want, count in ((len(data), data, 3), (len(data) - 2, data[:-6], 2)):
        reader = FileReader(str(path), "fwd")  # (an end inside a line: not handed out)
        try:
            got = b"".join(bytes(b.data) for b in reader.blocks(block_size=16, end=end))
            assert got == want
            assert (reader.state.offset, reader.state.line_no) == (len(want), count)
        finally:
            reader.close()
