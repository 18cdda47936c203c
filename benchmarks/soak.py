"""Soak: `observatory watch` at 3,000 lines/s for 30 minutes, with retention pruning active.

Starts `observatory watch` as a real process on a real DuckDB file, with a short
`[storage] retention` (default 5m, so the events table reaches its steady size early and is
pruned from then on), and appends pino-style delivery lines for five destinations to the
file it follows, in real time: realistic, varied lines (1 % errors of several kinds, a few
unparseable lines, latencies drawn from a different shape per destination) pre-generated
and written in batches every 50 ms, with event times spread over the batch.

Every few seconds it samples the watch process: RSS (VmRSS in /proc/PID/status), CPU time
and the database and WAL file sizes; a row per minute is printed as it completes. At the end
it stops watch (SIGTERM while lines still arrive: the poll under way finishes) and the writer,
and reads the database: lines consumed (ingest_offsets), rows kept, the event-time span kept.
(DuckDB lets one process open the file, so rows are only counted at the end.) The table's
RSS is the minute's median sample and its highest; CPU % is watch's share of one core in the
minute (in the `end` row: over the whole run).

Verdict (exit 1 on a missed target):
  * peak RSS <= 500 MB (the highest sample, and the kernel's high-water mark VmHWM);
  * RSS growth over the last 10 minutes < 10 %: the median sample of the last minute against
    the median of the minute that ended 10 minutes before the end (a run shorter than 20
    minutes compares over its second half);
  * watch kept up: of the lines written before it was stopped, those it never stored are at
    most 2 s worth (the live detection target): its poll under way then had begun at most 2 s
    earlier (one look, at the end; the CPU column shows its headroom all along);
  * the writer kept up itself (>= 99.5 % of the lines due, never more than 1 s late), or the
    measurement does not count.

    python benchmarks/soak.py [--minutes 30] [--rate 3000] [--retention 5m] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson

from observatory.sim.loadgen import JSONL_FIELDS

RSS_LIMIT_MB = 500.0
GROWTH_LIMIT = 0.10
GROWTH_WINDOW_MIN = 10
LAG_LIMIT_S = 2.0
TICK = 0.05  # s between the writer's batches
POOL = 100_000  # pre-generated line templates, cycled
CLK_TCK = os.sysconf("SC_CLK_TCK")

# destination: share of the traffic, and the latency shape (ms) its successes are drawn from
DESTINATIONS = {
    "tiktok_conversions": 0.35,  # lognormal around 120 ms
    "meta_capi": 0.27,  # bimodal: a fast path and a slow one
    "google_ads": 0.18,  # quantised to 10 ms, wide lognormal
    "crm_webhook": 0.12,  # fixed cost + exponential, a Pareto tail
    "segment_s2s": 0.08,  # gamma
}
EVENTS = ["CompletePayment", "AddToCart", "ViewContent", "PlaceAnOrder", "Lead", "Subscribe"]
# (http status, vendor code, message, level) of the 1 % that fail, by destination
ERRORS: dict[str, list[tuple[int | None, str, str]]] = {
    "tiktok_conversions": [
        (200, "40100", "Too many requests"),
        (200, "40002", "Invalid parameter"),
        (503, "ERR_BAD_RESPONSE", "Service Unavailable"),
    ],
    "meta_capi": [
        (400, "17", "User request limit reached"),
        (400, "100", "Invalid parameter"),
        (500, "2", "Service temporarily unavailable"),
    ],
    "google_ads": [
        (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted"),
        (400, "INVALID_ARGUMENT", "Request contains an invalid argument"),
        (None, "ETIMEDOUT", "timeout of 10000ms exceeded"),
    ],
    "crm_webhook": [
        (502, "ERR_BAD_RESPONSE", "Bad Gateway"),
        (None, "ECONNRESET", "socket hang up"),
        (404, "ERR_BAD_REQUEST", "Not Found"),
    ],
    "segment_s2s": [
        (429, "ERR_BAD_REQUEST", "Too Many Requests"),
        (500, "ERR_BAD_RESPONSE", "Internal Server Error"),
    ],
}
ERROR_SHARE = 0.01
GARBAGE_SHARE = 0.0001  # lines that are not JSON (a stack trace fragment): rejects


def latency(dest: str, rng: random.Random) -> float:
    if dest == "tiktok_conversions":
        return rng.lognormvariate(4.8, 0.35)
    if dest == "meta_capi":
        return rng.gauss(60, 8) if rng.random() < 0.8 else rng.gauss(250, 40)
    if dest == "google_ads":
        return round(rng.lognormvariate(5.3, 0.5) / 10) * 10
    if dest == "crm_webhook":
        if rng.random() < 0.02:
            return min(100 * rng.paretovariate(1.5), 30000)
        return 15 + rng.expovariate(1 / 30)
    return rng.gammavariate(2.0, 60.0)


def templates(seed: int) -> list[bytes]:
    """POOL line templates, each with `%d` (event time, ms) and `%x` (a line counter that
    makes message ids unique), in a random order of destinations and outcomes."""
    rng = random.Random(seed)
    names = list(DESTINATIONS)
    weights = list(DESTINATIONS.values())
    out: list[bytes] = []
    for _ in range(POOL):
        if rng.random() < GARBAGE_SHARE:
            out.append(b"    at TLSSocket.socketOnEnd (node:_http_client:%d:%x)\n")
            continue
        dest = rng.choices(names, weights)[0]
        event = rng.choice(EVENTS)
        ms = max(1.0, latency(dest, rng))
        attempt = 1 if rng.random() < 0.97 else rng.randint(2, 4)
        if rng.random() < ERROR_SHARE:
            status, code, message = rng.choice(ERRORS[dest])
            if status is None:
                ms = rng.uniform(5000, 10000)
            elif status == 429 or code in ("40100", "17"):
                ms = rng.uniform(10, 40)
            head = f'{{"level":50,"time":%d,"pid":4242,"hostname":"fwd-7c9f","dest":"{dest}"'
            code_part = f',"code":{status}' if status is not None else ""
            rest = (
                f',"event":"{event}","messageId":"m%x"{code_part},"duration":{ms:.1f},'
                f'"attempt":{attempt},"err":{{"code":"{code}","message":"{message}"}},'
                f'"msg":"delivery failed"}}\n'
            )
        else:
            head = f'{{"level":30,"time":%d,"pid":4242,"hostname":"fwd-7c9f","dest":"{dest}"'
            rest = (
                f',"event":"{event}","messageId":"m%x","code":200,"duration":{ms:.1f},'
                f'"attempt":{attempt},"msg":"delivery ok"}}\n'
            )
        out.append((head + rest).encode())
    return out


def config_text(db: Path, logs_glob: str, retention: str) -> str:
    fields = {**JSONL_FIELDS, "attempt": "attempt"}
    body = "\n".join(f'{k} = "{v}"' for k, v in fields.items())
    return (
        f'[storage]\ndb = "{db}"\nretention = "{retention}"\n\n'
        f'[[sources]]\nname = "forwarder"\npath = "{logs_glob}"\nformat = "jsonl"\n'
        f"[sources.fields]\n{body}\n"
    )


@dataclass
class Writer:
    """Appends `rate` lines/s to `path` in real time, in batches every TICK s."""

    path: Path
    rate: float
    seed: int = 7
    written: int = 0
    worst_late: float = 0.0  # s: how far behind schedule a batch's first line was written
    started: float = 0.0
    stopped: float = 0.0

    def __post_init__(self) -> None:
        self._pool = templates(self.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-writer", daemon=True)

    def start(self) -> Writer:
        self.started = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pool, n_pool, rate, t0 = self._pool, len(self._pool), self.rate, self.started
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while not self._stop.is_set():
                now = time.time()
                due = int((now - t0) * rate)
                k0 = self.written
                if due > k0:
                    self.worst_late = max(self.worst_late, now - (t0 + k0 / rate))
                    chunk = b"".join(
                        pool[k % n_pool] % (int((t0 + k / rate) * 1000), k) for k in range(k0, due)
                    )
                    os.write(fd, chunk)
                    self.written = due
                self._stop.wait(TICK)
        finally:
            self.stopped = time.time()
            os.close(fd)


@dataclass
class Sample:
    t: float  # s since the writer started
    rss_mb: float
    hwm_mb: float
    cpu_s: float
    written: int
    db_mb: float
    wal_mb: float


@dataclass
class Sampler:
    """Samples the watch process every `every` s."""

    pid: int
    db: Path
    writer: Writer
    every: float
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def take(self) -> Sample | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        kb = {
            k: int(v.split()[0])
            for k, v in (ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
            if k in ("VmRSS", "VmHWM")
        }
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
        sample = Sample(
            time.time() - self.writer.started,
            kb.get("VmRSS", 0) / 1024,
            kb.get("VmHWM", 0) / 1024,
            cpu,
            self.writer.written,
            _size_mb(self.db),
            _size_mb(Path(str(self.db) + ".wal")),
        )
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.take()


def _size_mb(path: Path) -> float:
    try:
        return path.stat().st_size / 1e6
    except FileNotFoundError:
        return 0.0


def minute_rows(samples: list[Sample], minutes: int) -> list[tuple[int, list[Sample]]]:
    rows = []
    for m in range(1, minutes + 1):
        in_minute = [s for s in samples if m - 1 < s.t / 60 <= m]
        if in_minute:
            rows.append((m, in_minute))
    return rows


HEADER = (
    f"{'min':>4} {'RSS MB':>7} {'max':>7} {'CPU %':>6} {'lines written':>14} "
    f"{'DB MB':>7} {'WAL MB':>7}"
)


def format_row(label: str, in_minute: list[Sample], before: Sample | None) -> str:
    """A table row: the minute's median and highest RSS, watch's CPU share since `before`,
    and the writer's count and the file sizes at the minute's last sample."""
    last = in_minute[-1]
    first_cpu, first_t = (before.cpu_s, before.t) if before else (0.0, 0.0)
    cpu_pct = 100 * (last.cpu_s - first_cpu) / max(last.t - first_t, 1e-9)
    rss = [s.rss_mb for s in in_minute]
    return (
        f"{label:>4} {statistics.median(rss):>7.1f} {max(rss):>7.1f} {cpu_pct:>6.0f} "
        f"{last.written:>14,} {last.db_mb:>7.1f} {last.wal_mb:>7.1f}"
    )


def run(args: argparse.Namespace, tmp: Path) -> int:
    logs = tmp / "logs"
    logs.mkdir()
    log = logs / "forwarder.jsonl"
    log.touch()
    db = tmp / "soak.duckdb"
    cfg = tmp / "config.toml"
    cfg.write_text(config_text(db, str(logs / "*.jsonl"), args.retention))
    seconds = args.minutes * 60
    print(
        f"soak: watch at {args.rate:,.0f} lines/s for {args.minutes:g} min, retention "
        f"{args.retention}, in {tmp}",
        flush=True,
    )
    writer = Writer(log, args.rate)  # pre-generates its lines before watch starts
    proc = subprocess.Popen(
        [sys.executable, "-m", "observatory", "watch", "--config", str(cfg)]
        + ["--duration", str(seconds + 600)],  # a backstop: stopped by SIGTERM below
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    opened: list[str] = []
    stderr_tail: list[str] = []
    live = threading.Event()

    def read_out() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            rec = orjson.loads(raw)
            if rec.get("type") == "incident" and rec.get("state") == "open":
                opened.append(f"{rec['destination']} ({rec['detector']})")

    def read_err() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            stderr_tail[:] = [*stderr_tail[-20:], raw.rstrip()]
            if "watch: live" in raw:
                live.set()

    for target in (read_out, read_err):
        threading.Thread(target=target, daemon=True).start()
    if not live.wait(60):
        proc.kill()
        print("watch did not go live within 60 s:\n" + "\n".join(stderr_tail), file=sys.stderr)
        return 1
    writer.start()
    sampler = Sampler(proc.pid, db, writer, args.sample)
    sampler.take()
    sampler.start()
    print(HEADER, flush=True)
    minutes = int(args.minutes) if args.minutes == int(args.minutes) else int(args.minutes) + 1
    printed = 0
    try:
        while time.time() - writer.started < seconds:
            if proc.poll() is not None:
                break
            time.sleep(1.0)
            printed = _print_minutes(sampler.samples, printed, (time.time() - writer.started) / 60)
    finally:
        # SIGTERM while lines still arrive: watch finishes the poll under way (or, between
        # polls, makes one more) and exits. Lines written before the signal that it never
        # stored were waiting for a poll: the lag.
        sampler.stop()
        final = sampler.take()
        written_at_stop = writer.written
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        writer.stop()
    _print_minutes(sampler.samples, printed, minutes)
    if final is not None:
        print(format_row("end", [final], sampler.samples[0]))
    if code != 0:
        print(f"watch exited with {code}:\n" + "\n".join(stderr_tail), file=sys.stderr)
        return 1
    return verdict(args, sampler.samples, writer, written_at_stop, db, opened)


def _print_minutes(samples: list[Sample], printed: int, now_min: float) -> int:
    rows = minute_rows(samples, int(now_min))
    for m, in_minute in rows:
        if m <= printed:
            continue
        before = [s for s in samples if s.t / 60 <= m - 1]
        print(format_row(str(m), in_minute, before[-1] if before else None), flush=True)
        printed = m
    return printed


def verdict(
    args: argparse.Namespace,
    samples: list[Sample],
    writer: Writer,
    written_at_stop: int,
    db: Path,
    opened: list[str],
) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        consumed = con.execute("SELECT coalesce(sum(line_no), 0) FROM ingest_offsets").fetchone()
        rows, span = con.execute(
            "SELECT count(*), coalesce(epoch(max(ts)) - epoch(min(ts)), 0) FROM events"
        ).fetchone()  # type: ignore[misc]  # an aggregate: one row always
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()
    finally:
        con.close()
    lines = int(consumed[0]) if consumed else 0
    missed: list[str] = []
    elapsed = writer.stopped - writer.started
    due = int(elapsed * args.rate)
    print()
    writer_ok = writer.written >= 0.995 * due and writer.worst_late <= 1.0
    print(
        f"writer: {writer.written:,} lines in {elapsed:.0f} s = {writer.written / elapsed:,.0f}/s "
        f"({100 * writer.written / max(due, 1):.2f} % of those due), worst batch "
        f"{writer.worst_late:.2f} s late: {'kept up' if writer_ok else 'DID NOT keep up'}"
    )
    if not writer_ok:
        missed.append("the writer did not keep up (the measurement does not count)")
    lag = max(0, written_at_stop - lines)
    lag_s = lag / args.rate
    print(
        f"watch: {written_at_stop:,} lines written when it was stopped, {lines:,} consumed "
        f"(lag {lag:,} lines = {lag_s:.2f} s; target <= {LAG_LIMIT_S:g} s)"
    )
    print(
        f"database: {rows:,} events kept spanning {span / 60:.1f} min of event time "
        f"(retention {args.retention}), {rejects[0] if rejects else 0:,} rejects; "
        f"incidents opened: {', '.join(opened) or 'none'}"
    )
    if lag_s > LAG_LIMIT_S:
        missed.append(f"watch lagged {lag_s:.2f} s behind the writer")
    rss = [s.rss_mb for s in samples]
    hwm = max(s.hwm_mb for s in samples)
    peak = max(max(rss), hwm)
    print(
        f"peak RSS: {max(rss):.1f} MB sampled, {hwm:.1f} MB high-water mark "
        f"(target <= {RSS_LIMIT_MB:.0f} MB)"
    )
    if peak > RSS_LIMIT_MB:
        missed.append(f"peak RSS {peak:.1f} MB > {RSS_LIMIT_MB:.0f} MB")
    end = samples[-1].t / 60
    window = GROWTH_WINDOW_MIN if end >= 2 * GROWTH_WINDOW_MIN else end / 2
    then = [s.rss_mb for s in samples if end - window - 1 < s.t / 60 <= end - window]
    now = [s.rss_mb for s in samples if s.t / 60 > end - 1]
    if then and now:
        growth = statistics.median(now) / statistics.median(then) - 1
        print(
            f"RSS growth over the last {window:.1f} min: {statistics.median(then):.1f} -> "
            f"{statistics.median(now):.1f} MB = {100 * growth:+.1f} % "
            f"(target < {100 * GROWTH_LIMIT:.0f} %)"
        )
        if growth >= GROWTH_LIMIT:
            missed.append(f"RSS grew {100 * growth:.1f} % over the last {window:.1f} min")
    if missed:
        print("MISSED: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=3000.0, help="lines/s")
    ap.add_argument("--retention", default="5m", help="the config's storage.retention")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = ap.parse_args()
    if args.keep:
        if args.keep.exists():
            shutil.rmtree(args.keep)
        args.keep.mkdir(parents=True)
        sys.exit(run(args, args.keep))
    with tempfile.TemporaryDirectory() as td:
        sys.exit(run(args, Path(td)))


if __name__ == "__main__":
    main()
