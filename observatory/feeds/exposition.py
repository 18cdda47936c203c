"""The Prometheus text exposition format, read with ``prometheus_client.parser``.

The library parses a whole body or raises at its first bad line; a scrape must not lose every
sample to one bad line, so a body that fails is read again line by line, and the lines that
still fail are counted. Counter samples keep the name they were written with: the library
reports ``event_delivery`` of a ``# TYPE event_delivery counter`` as ``event_delivery_total``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    ts_ms: int | None = None


def _samples(text: str) -> list[Sample]:
    out: list[Sample] = []
    body = "\n" + text
    for family in text_string_to_metric_families(text):
        total = family.name + "_total"
        # the library names every counter sample ``<family>_total``; restore the written name
        restore = family.type == "counter" and f"\n{total}" not in body
        for s in family.samples:
            name = family.name if restore and s.name == total else s.name
            ts = s.timestamp
            ts_ms = None if ts is None else round(float(ts) * 1000)
            out.append(Sample(name, dict(s.labels), float(s.value), ts_ms))
    return out


def parse_exposition(text: str) -> tuple[list[Sample], list[str]]:
    """Every sample of a body, and the lines that did not parse."""
    try:
        return _samples(text), []
    except ValueError:
        pass
    samples: list[Sample] = []
    bad: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            samples += _samples(line + "\n")
        except ValueError:
            bad.append(line)
    return samples, bad
