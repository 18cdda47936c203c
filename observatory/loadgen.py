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

import orjson

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


def line(dest: str, ts: float, rng: random.Random, fault: Fault | None = None) -> bytes:
    """One delivery log line at event time `ts` (epoch seconds)."""
    rec: dict[str, object] = {
        "level": 30,
        "time": int(ts * 1000),
        "msg": "delivery ok",
        "dest": dest,
        "event": "CompletePayment",
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "code": 200,
        "duration": round(rng.lognormvariate(4.5, 0.4), 1),
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
                            chunk.append(line(dest, due[dest], rng, fault))
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
