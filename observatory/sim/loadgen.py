"""A real-time writer of pino-style delivery lines, for live tests and benchmarks.

`LineWriter` appends lines for several destinations at given rates to a log file, in real
time, and can switch a destination into a fault (all 429s, all failures, silence) at a
moment it records, so a test can measure how long detection took from the first bad line.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import orjson

from observatory.sim import latency_shapes
from observatory.sim.latency_shapes import Shape

Fault = Literal["rate_limit", "failure", "silence"]

JSONL_FIELDS = {
    "ts": "time",
    "destination": "dest",
    "http_status": "code",
    "latency_ms": "duration",
    "message_id": "messageId",
    "error_code": "err.code",
    "error_message": "err.message",
    "event_name": "event",
}


def config_toml(db: str, logs_glob: str, warmup: str = "60s", extra: str = "") -> str:
    """A config reading `logs_glob` as pino JSON lines written by this module."""
    fields = "\n".join(f'{k} = "{v}"' for k, v in JSONL_FIELDS.items())
    return (
        f'[storage]\ndb = "{db}"\n\n[[sources]]\nname = "forwarder"\npath = "{logs_glob}"\n'
        f'format = "jsonl"\n[sources.fields]\n{fields}\n\n'
        f'[detection]\nwarmup = "{warmup}"\n{extra}'
    )


def line(
    dest: str,
    ts: float,
    rng: random.Random,
    fault: Fault | None = None,
    latency: float | None = None,
) -> bytes:
    """One delivery log line at event time `ts` (epoch seconds); `latency` in ms (default:
    lognormal around 90 ms)."""
    rec: dict[str, object] = {
        "level": 30,
        "time": int(ts * 1000),
        "msg": "delivery ok",
        "dest": dest,
        "event": "CompletePayment",
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "code": 200,
        "duration": round(rng.lognormvariate(4.5, 0.4) if latency is None else latency, 1),
        "attempt": 1,
    }
    if fault == "rate_limit":
        rec.update(
            level=40, msg="delivery failed", err={"code": "40100", "message": "Too many requests"}
        )
    elif fault == "failure":
        rec.update(
            level=50,
            msg="delivery failed",
            code=503,
            err={"code": "ERR_BAD_RESPONSE", "message": "Service Unavailable"},
        )
    return orjson.dumps(rec) + b"\n"


def backlog(path: Path, rates: dict[str, float], start: float, end: float, seed: int = 1) -> int:
    """Write history lines (event times in [start, end)) at the given rates; returns lines."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for dest, rate in rates.items():
        t = start + rng.expovariate(rate)
        while t < end:
            out.append(line(dest, t, rng))
            t += rng.expovariate(rate)
    out.sort(key=lambda b: orjson.loads(b)["time"])
    with path.open("ab") as fh:
        fh.write(b"".join(out))
    return len(out)


class Latencies:
    """Latencies (ms) per destination drawn from its shape (`latency_shapes`), in blocks;
    None for a destination without a shape (the line's default)."""

    def __init__(self, shapes: dict[str, Shape], seed: int) -> None:
        self.shapes = shapes
        self._rng = np.random.default_rng(seed)
        self._left: dict[str, list[float]] = {}

    def next(self, dest: str) -> float | None:
        shape = self.shapes.get(dest)
        if shape is None:
            return None
        left = self._left.get(dest)
        if not left:
            left = self._left[dest] = latency_shapes.sample(shape, self._rng, 4096).tolist()
        return left.pop()


def write_history(
    path: Path,
    rates: dict[str, float],
    start: float,
    end: float,
    shapes: dict[str, Shape],
    seed: int = 1,
    error_share: float = 0.01,
    slower: tuple[str, float, float] | None = None,
) -> int:
    """Append history lines (event times in [start, end), in time order) fast, vectorised:
    Poisson arrivals at `rates`, `error_share` of them 503s, latencies of each destination's
    shape; `slower` = (destination, from, factor) multiplies that destination's latencies from
    that time on (a latency fault). Returns the number of lines."""
    rng = np.random.default_rng(seed)
    times: list[np.ndarray] = []
    dests: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    names = list(rates)
    for i, dest in enumerate(names):
        n = int(rng.poisson(rates[dest] * (end - start)))
        t = np.sort(rng.uniform(start, end, n))
        lat = latency_shapes.sample(shapes.get(dest, "lognormal"), rng, n)
        if slower is not None and slower[0] == dest:
            lat = np.where(t >= slower[1], lat * slower[2], lat)
        times.append(t)
        dests.append(np.full(n, i))
        lats.append(lat)
    t_all = np.concatenate(times)
    order = np.argsort(t_all, kind="stable")
    t_ms = (t_all[order] * 1000.0).astype(np.int64).tolist()
    d_all = np.concatenate(dests)[order].tolist()
    l_all = np.round(np.concatenate(lats)[order], 1).tolist()
    bad = (rng.random(len(t_ms)) < error_share).tolist()
    ids = rng.integers(0, 2**62, len(t_ms)).tolist()
    ok = '","code":200,"duration":{}}}\n'
    fail = (
        '","code":503,"duration":{},"err":{{"code":"ERR_BAD_RESPONSE",'
        '"message":"Service Unavailable"}}}}\n'
    )
    with path.open("a", encoding="utf-8") as fh:
        chunk: list[str] = []
        for t, d, lat, b, ident in zip(t_ms, d_all, l_all, bad, ids, strict=True):
            head = (
                f'{{"level":{50 if b else 30},"time":{t},"dest":"{names[d]}",'
                f'"event":"CompletePayment","messageId":"{ident:016x}'
            )
            chunk.append(head + (fail if b else ok).format(lat))
            if len(chunk) >= 100_000:
                fh.write("".join(chunk))
                chunk.clear()
        fh.write("".join(chunk))
    return len(t_ms)


@dataclass
class LineWriter:
    """Appends lines in real time (flushed every `tick` s) until stopped."""

    path: Path
    rates: dict[str, float]
    seed: int = 2
    tick: float = 0.02
    faults: dict[str, Fault] = field(default_factory=dict)
    first_fault_write: dict[str, float] = field(default_factory=dict)  # dest -> wall time
    written: int = 0
    shapes: dict[str, Shape] = field(default_factory=dict)  # latency shape per destination
    error_share: float = 0.0  # share of ordinary failed lines (503s) outside any fault

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="line-writer", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> LineWriter:
        self._thread.start()
        return self

    def inject(self, dest: str, fault: Fault) -> None:
        with self._lock:
            self.faults[dest] = fault

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        rng = random.Random(self.seed)
        latencies = Latencies(self.shapes, self.seed)
        due = {d: time.time() + rng.expovariate(r) for d, r in self.rates.items()}
        with self.path.open("ab", buffering=0) as fh:
            while not self._stop.is_set():
                now = time.time()
                chunk: list[bytes] = []
                bad: list[str] = []
                with self._lock:
                    faults = dict(self.faults)
                for dest, rate in self.rates.items():
                    fault = faults.get(dest)
                    while due[dest] <= now:
                        if fault != "silence":
                            ms = latencies.next(dest)
                            kind = fault
                            if (
                                kind is None
                                and self.error_share
                                and rng.random() < self.error_share
                            ):
                                kind = "failure"
                            chunk.append(line(dest, due[dest], rng, kind, ms))
                            if fault is not None:
                                bad.append(dest)
                        due[dest] += rng.expovariate(rate)
                if chunk:
                    fh.write(b"".join(chunk))
                    written_at = time.time()
                    self.written += len(chunk)
                    for dest in bad:
                        self.first_fault_write.setdefault(dest, written_at)
                for dest, fault in faults.items():
                    if fault == "silence":
                        self.first_fault_write.setdefault(dest, now)
                time.sleep(self.tick)
